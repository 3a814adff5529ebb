//! Runs a rule pack natively over the benchmarks' mixed stream (or an NDJSON file), for profiling:
//! prints events/s and how many events reached each stage. `PACK_CANDIDATES=1` also prints how many
//! events each rule is dispatched for (by `event.action`, on the records the fast path's scan reads).
//!
//! `cargo run --release -p newterms-guest --example pack_profile -- RULES_DIR [PASSES] [CORPUS.ndjson]`
//!
//! With `PACK_MEMORY=N` instead: live heap of the pack with no terms (the rules' share), then with N
//! distinct terms learned by the Lambda rule, against the built-in rule's detector with the same N.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use newterms_guest::{Config, Detector, Profile};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A direct Lambda `Invoke` by user `index`: one new term of the Lambda rule each.
fn invoke_by(index: usize) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-05-01T00:00:00Z","eventSource":"lambda.amazonaws.com","eventName":"Invoke","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.1","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/user-{index}","accountId":"123456789012","userName":"user-{index}"}},"recipientAccountId":"123456789012"}}"#
    )
}

fn memory(files: &[RuleFile], terms: usize) {
    let learn = Config {
        learn: true,
        capacity: Some(u32::try_from(terms).unwrap()),
        ..Config::default()
    };
    let before = LIVE.load(Ordering::Relaxed);
    let mut pack = RulePackDetector::from_files(files, learn.clone()).unwrap();
    let empty = LIVE.load(Ordering::Relaxed) - before;
    for index in 0..terms {
        pack.process(&invoke_by(index)).unwrap();
    }
    let full = LIVE.load(Ordering::Relaxed) - before;
    let footprint = pack.footprint();
    drop(pack);
    let before = LIVE.load(Ordering::Relaxed);
    let mut builtin = Detector::new(Config {
        profile: Profile::Elastic,
        ..learn
    })
    .unwrap();
    for index in 0..terms {
        builtin.process(&invoke_by(index)).unwrap();
    }
    let builtin_bytes = LIVE.load(Ordering::Relaxed) - before;
    let builtin_footprint = builtin.footprint();
    println!(
        "pack of {} rules: {empty} bytes with no term ({} per rule); with {} terms {full} bytes, {:.1} bytes per term beyond the empty pack (history {:.1}/term, of which the terms themselves {:.1})",
        files.len(),
        empty / files.len().max(1),
        footprint.terms,
        (full - empty) as f64 / footprint.terms.max(1) as f64,
        footprint.history_bytes as f64 / footprint.terms.max(1) as f64,
        footprint.term_bytes as f64 / footprint.terms.max(1) as f64,
    );
    println!(
        "built-in rule: {} terms, {builtin_bytes} bytes, {:.1} per term (history {:.1}/term, of which the terms themselves {:.1})",
        builtin_footprint.terms,
        builtin_bytes as f64 / builtin_footprint.terms.max(1) as f64,
        builtin_footprint.history_bytes as f64 / builtin_footprint.terms.max(1) as f64,
        builtin_footprint.term_bytes as f64 / builtin_footprint.terms.max(1) as f64,
    );
}
use newterms_guest::rule_pack::{RuleFile, RulePackDetector};

#[path = "../../benches/streams.rs"]
mod streams;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rules = args.get(1).expect("RULES_DIR");
    let passes: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5);
    let mut files = Vec::new();
    let path = std::path::Path::new(rules);
    let paths: Vec<_> = if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    for path in paths {
        files.push(RuleFile {
            name: path.display().to_string(),
            text: std::fs::read_to_string(&path).unwrap(),
        });
    }
    if let Some(terms) = std::env::var("PACK_MEMORY")
        .ok()
        .and_then(|terms| terms.parse().ok())
    {
        memory(&files, terms);
        return;
    }
    let events = match args.get(3) {
        Some(corpus) => std::fs::read_to_string(corpus)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
        None => streams::mixed_stream(&streams::real_corpus(), 60_000),
    };
    let buffers = streams::ndjson_buffers(&events, 1024);
    if std::env::var_os("PACK_CANDIDATES").is_some() {
        let detector = RulePackDetector::from_files(&files, Config::default()).unwrap();
        let pack = detector.pack();
        let mut marks = newterms_guest::kql::pack::Candidates::default();
        let mut per_rule = vec![0_usize; pack.rules().len()];
        let (mut any, mut unread) = (0, 0);
        for event in &events {
            let dispatched = newterms_guest::fastpath::scan(event)
                .filter(|fields| fields.raw)
                .and_then(|fields| pack.dispatched(&fields, &mut marks));
            let Some(some) = dispatched else {
                unread += 1;
                continue;
            };
            any += usize::from(some);
            for &index in marks.listed() {
                if let Some(count) = per_rule.get_mut(index) {
                    *count += 1;
                }
            }
        }
        println!(
            "events with a rule dispatched: {any} of {} ({unread} not read by the scan)",
            events.len()
        );
        for (rule, count) in pack.rules().iter().zip(per_rule) {
            println!("{count:>7} {}", rule.name);
        }
    }
    let mut detector = RulePackDetector::from_files(&files, Config::default()).unwrap();
    let start = Instant::now();
    let mut outcomes = 0;
    for _ in 0..passes {
        for buffer in &buffers {
            outcomes += detector.process_ndjson(buffer).len();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{} rules, {} events x {passes}: {:.3} M events/s, {outcomes} lines with alerts or errors; {} by the fast path; {:?}",
        files.len(),
        events.len(),
        (events.len() * passes) as f64 / elapsed / 1e6,
        detector.fast_path_events(),
        detector.stats()
    );
    // The two stages `--threads` runs apart: the stateless extraction (on every core) and the
    // decisions (on one), each timed alone.
    let mut extractor = RulePackDetector::from_files(&files, Config::default()).unwrap();
    let mut decider = RulePackDetector::from_files(&files, Config::default()).unwrap();
    let (mut extracting, mut deciding) = (0.0, 0.0);
    for _ in 0..passes {
        for buffer in &buffers {
            let start = Instant::now();
            let extraction = extractor.extract_ndjson(buffer);
            let middle = Instant::now();
            std::hint::black_box(decider.decide(&extraction));
            extracting += (middle - start).as_secs_f64();
            deciding += middle.elapsed().as_secs_f64();
        }
    }
    let events = (events.len() * passes) as f64;
    println!(
        "in stages: extract {:.3} M events/s, decide {:.3} M events/s (decisions are {:.1} % of the two)",
        events / extracting / 1e6,
        events / deciding / 1e6,
        100.0 * deciding / (extracting + deciding)
    );
}
