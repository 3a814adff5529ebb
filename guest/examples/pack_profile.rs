//! Runs a rule pack natively over the benchmarks' mixed stream (or an NDJSON file), for profiling:
//! prints events/s and how many events reached each stage.
//!
//! `cargo run --release -p newterms-guest --example pack_profile -- RULES_DIR [PASSES] [CORPUS.ndjson]`

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use newterms_guest::Config;
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
        let mut marks = Vec::new();
        let mut per_rule = vec![0_usize; pack.rules().len()];
        let mut any = 0;
        for event in &events {
            any += usize::from(pack.candidates(event.as_bytes(), &mut marks));
            for (count, mark) in per_rule.iter_mut().zip(&marks) {
                *count += usize::from(*mark);
            }
        }
        println!("events with a candidate rule: {any} of {}", events.len());
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
}
