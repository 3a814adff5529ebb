//! One command, one table: `cargo bench --bench report`.
//!
//! Single-threaded events/s and MB/s for the rule's logic compiled natively, the component called
//! per event, in `list<string>` batches and in NDJSON buffers, and `newterms scan` end to end on a
//! file; on a mixed stream, an all-`Invoke` stream and the real corpus; then memory per term, snapshot
//! size and speed at one million terms, cold start and component size. Sandbox limits on
//! (`Limits::default()`). Every figure is the median of several runs; see `benches/README.md`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)] // a measurement harness

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use newterms::{Limits, RuleComponent, RuleConfig, Sandbox};
use newterms_guest::{Config, Detector};

#[path = "streams.rs"]
mod streams;

/// Counts live heap bytes, to measure the native history honestly.
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

const RUNS: usize = 5;
/// Rounds of commands run in turns ([`in_turns`]): ratios are taken round by round, and their
/// median needs more of them than a figure alone.
const ROUNDS: usize = 9;
const EVENTS: usize = 60_000;
const SCAN_EVENTS: usize = 300_000;
/// Events of the rule packs' ECS rows (a pack reads ECS documents several times slower).
const ECS_EVENTS: usize = 60_000;
/// Events in a scan's start file: about four of the ranges `newterms scan` reads a plain file in
/// (three quarters of a default batch of 340 events each), so that each of two extracting threads
/// gets one and makes its instance.
const START_EVENTS: usize = 1024;

/// Events of the alert storm (`alert_storm`): every one raises an alert, ~25 thousand a second.
const ALERT_EVENTS: usize = 20_000;
const BATCH: usize = 1024;
const TERMS: usize = 1_000_000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median time of `RUNS` runs of `run`, each on a fresh `setup()`.
fn time<S>(mut setup: impl FnMut() -> S, mut run: impl FnMut(&mut S)) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..RUNS {
        let mut state = setup();
        let start = Instant::now();
        run(&mut state);
        samples.push(start.elapsed());
    }
    median(samples)
}

fn rate(events: usize, bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    format!(
        "{:.2} M/s ({:.0} MB/s)",
        events as f64 / seconds / 1e6,
        bytes as f64 / seconds / 1e6
    )
}

/// Whether the section `name` runs: all of them, unless `NEWTERMS_REPORT` lists some
/// (`throughput,breakdown,memory,cold,rules,alerts,history,deliveries`).
fn section(name: &str) -> bool {
    std::env::var("NEWTERMS_REPORT").map_or(true, |list| list.split(',').any(|item| item == name))
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let corpus = streams::real_corpus();
    let stream_list = [
        (
            "mixed (~3 % Invoke)",
            streams::mixed_stream(&corpus, EVENTS),
        ),
        ("all Invoke", streams::all_invoke_stream(EVENTS)),
        (
            "real corpus repeated",
            streams::real_stream(&corpus, EVENTS),
        ),
    ];
    let sandbox = Sandbox::new(Limits::default()).expect("engine");
    let component = RuleComponent::embedded(&sandbox).expect("component");
    let config = RuleConfig::default();
    let scratch = std::env::temp_dir().join(format!("newterms-report-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");

    if section("throughput") {
        throughput(&stream_list, &component, &config, &scratch);
    }
    if section("breakdown") {
        where_the_time_goes(&stream_list[0].1, "mixed");
        where_the_time_goes(&stream_list[1].1, "all Invoke");
    }
    if section("memory") {
        memory_and_snapshots(&component, &config);
    }
    if section("cold") {
        cold_start(&scratch);
    }
    if section("rules") {
        rule_packs(&stream_list[0].1, &scratch);
    }
    if section("alerts") {
        alert_storm(&scratch);
    }
    if section("history") {
        large_history(&stream_list[0].1, &scratch);
    }
    if section("deliveries") {
        delivery_files(&stream_list[0].1, &scratch);
    }
    println!("\n## Component\n");
    println!(
        "size: {} bytes ({:.1} KB)",
        newterms::EMBEDDED_COMPONENT.len(),
        newterms::EMBEDDED_COMPONENT.len() as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

fn throughput(
    stream_list: &[(&str, Vec<String>)],
    component: &RuleComponent,
    config: &RuleConfig,
    scratch: &Path,
) {
    println!(
        "## Throughput (single thread, sandbox limits on, median of {RUNS} runs, and of {ROUNDS} in turns where a target compares them)\n"
    );
    println!(
        "| stream | bytes/event | native | component per event | component `list<string>` x{BATCH} | component NDJSON x{BATCH} | `newterms scan` file ({SCAN_EVENTS} events, incl. start) | `newterms scan` minus start | `newterms scan` gzip file minus start | `newterms scan --threads 2` minus start |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let start_cost = scan_time(scratch, "empty.ndjson", b"");
    let mut targets = Vec::new();
    let mut gzip_ratios = Vec::new();
    let mut threads_targets = Vec::new();
    let mut other_threads = Vec::new();
    let mut ceilings = Vec::new();
    for (name, events) in stream_list {
        let bytes = streams::bytes(events);
        let n = events.len();
        let per_event = time(
            || component.instantiate(config).expect("instance"),
            |rule| {
                for event in events {
                    rule.process_event(event).expect("no trap").ok();
                }
            },
        );
        let batched = time(
            || component.instantiate(config).expect("instance"),
            |rule| {
                for chunk in events.chunks(BATCH) {
                    rule.process_batch(chunk).expect("no trap");
                }
            },
        );
        let buffers = streams::ndjson_buffers(events, BATCH);
        let scan_events: Vec<String> = events.iter().cycle().take(SCAN_EVENTS).cloned().collect();
        let scan_bytes = streams::bytes(&scan_events);
        let file_name = format!("{}.ndjson", name.split(' ').next().unwrap_or("stream"));
        let path = scratch.join(&file_name);
        let text = ndjson_text(&scan_events);
        std::fs::write(&path, &text).expect("write stream file");
        // The figures the targets compare, run in turns (native, component, one thread, two
        // threads, again...): the machine's speed drifts, and turns see the same drift, so each
        // target is the median of its ratio round by round.
        let mut scan_two_cpu = Vec::new();
        let [native_runs, ndjson_runs, scan_runs, scan_two_runs] = in_turns([
            &mut || {
                let mut detector = Detector::new(Config::default()).expect("config");
                let start = Instant::now();
                for event in events {
                    let _ = detector.process(event);
                }
                start.elapsed()
            },
            &mut || {
                let mut rule = component.instantiate(config).expect("instance");
                let start = Instant::now();
                for buffer in &buffers {
                    rule.process_ndjson(buffer).expect("no trap");
                }
                start.elapsed()
            },
            &mut || scan_once(&path, &["--threads", "1"]),
            &mut || {
                let (wall, cpu) = scan_once_with_cpu(&path, &["--threads", "2"]);
                scan_two_cpu.extend(cpu);
                wall
            },
        ]);
        let gzip_path = scratch.join(format!("{file_name}.gz"));
        std::fs::write(&gzip_path, gzipped(text.as_bytes())).expect("write gzip file");
        drop(text);
        let [gzip_runs] = in_turns([&mut || scan_once(&gzip_path, &["--threads", "1"])]);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&gzip_path);
        // Each thread count's own start, timed on the stream's first events so that every
        // extracting thread makes its instance; the rates leave those events out.
        let (start, counted, counted_bytes) = start_file(&scan_events);
        // The two-thread start's CPU too, taken in the same runs, for the ceiling below.
        let start_path = scratch.join(format!("start-{file_name}"));
        std::fs::write(&start_path, start.as_bytes()).expect("write start file");
        let mut start_two_cpus = Vec::new();
        let [start_one, start_two] = in_turns([
            &mut || scan_once(&start_path, &["--threads", "1"]),
            &mut || {
                let (wall, cpu) = scan_once_with_cpu(&start_path, &["--threads", "2"]);
                start_two_cpus.extend(cpu);
                wall
            },
        ])
        .map(median);
        let _ = std::fs::remove_file(&start_path);
        let start_two_cpu = (!start_two_cpus.is_empty()).then(|| median(start_two_cpus));
        let (scan_net, scan_two_net, gzip_net) = (
            minus_start(&scan_runs, start_one),
            minus_start(&scan_two_runs, start_two),
            minus_start(&gzip_runs, start_cost),
        );
        let (native, ndjson) = (median(native_runs.clone()), median(ndjson_runs.clone()));
        let (scan, scan_run) = (median(scan_runs), median(scan_net.clone()));
        let (scan_two_run, gzip_run) = (median(scan_two_net.clone()), median(gzip_net));
        println!(
            "| {name} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            bytes as f64 / n as f64,
            rate(n, bytes, native),
            rate(n, bytes, per_event),
            rate(n, bytes, batched),
            rate(n, bytes, ndjson),
            rate(SCAN_EVENTS, scan_bytes, scan),
            rate(counted, counted_bytes, scan_run),
            rate(SCAN_EVENTS, scan_bytes, gzip_run),
            rate(counted, counted_bytes, scan_two_run),
        );
        let per_second = |events: usize, elapsed: Duration| events as f64 / elapsed.as_secs_f64();
        gzip_ratios.push(format!(
            "{name}: {:.2}x",
            per_second(SCAN_EVENTS, gzip_run) / per_second(counted, scan_run)
        ));
        // Rates per event: the scan counts the events after its start file, the component all.
        let scan_over_component =
            Rounds::of(&ndjson_runs, &scan_net).scaled(counted as f64 / n as f64);
        targets.push((
            format!("`newterms scan` (minus start) / component NDJSON, {name}"),
            scan_over_component,
            0.9,
        ));

        let two_over_one = Rounds::of(&scan_net, &scan_two_net);
        let target = if name.starts_with("all Invoke") {
            Some(1.8)
        } else if name.starts_with("mixed") {
            Some(1.6)
        } else {
            None
        };
        match target {
            Some(target) => {
                if let Some(start_cpu) = start_two_cpu {
                    let busy = minus_start(&scan_two_cpu, start_cpu);
                    ceilings.push((
                        name.to_string(),
                        two_over_one.median(),
                        cores_ceiling(&scan_net, &busy),
                    ));
                }
                threads_targets.push((
                    format!("`newterms scan --threads 2` / one thread, {name}"),
                    two_over_one,
                    target,
                ));
            }
            None => other_threads.push(format!("{name}: {:.2}x", two_over_one.median())),
        }
        if name.starts_with("all Invoke") {
            targets.push((
                format!("component NDJSON / native, {name}"),
                Rounds::of(&native_runs, &ndjson_runs),
                0.8,
            ));
        }
    }
    println!(
        "\n`newterms scan` start (process start, compile, instantiate) on an empty file: {:.1} ms; the \
         plain file's rates are minus each thread count's start timed on the stream's first \
         {START_EVENTS} events (every extracting thread makes its instance at its first batch), \
         over the other events\n",
        start_cost.as_secs_f64() * 1e3
    );
    println!(
        "`newterms scan` on the gzip file / on the plain file (no target: inflating is serial, see benches/README.md): {}\n",
        gzip_ratios.join(", ")
    );
    println!(
        "`newterms scan --threads 2` / one thread (no target): {}\n",
        other_threads.join(", ")
    );
    println!(
        "## Targets (each the median over {ROUNDS} rounds of its ratio in the round: native, component NDJSON, `newterms scan` with one thread and with two ran in turns)\n"
    );
    print_targets(targets.into_iter().chain(threads_targets));
    println!("\n(on {} cores)\n", cores());
    if !ceilings.is_empty() {
        println!(
            "Two threads' ceiling: the cores cannot run the two-thread scan's CPU time (user and \
             system, minus its start's) in less than that time over their number, so its ratio \
             to one thread is at most one thread's wall time over that (median of the rounds; \
             one thread already spends more than a core when its reader runs beside the rule):\n"
        );
        println!(
            "| stream | two threads / one | at most, for the CPU two threads spent |\n|---|---|---|"
        );
        for (name, measured, ceiling) in ceilings {
            println!("| {name} | {measured:.3}x | {ceiling:.3}x |");
        }
        println!();
    }
}

/// The machine's cores, as `newterms scan` counts them for its default threads.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The most two threads' ratio to one could be, round by round: one thread's wall time over the
/// two-thread run's CPU time spread over every core (a median, as [`median_ratio`]).
fn cores_ceiling(one_thread_wall: &[Duration], two_threads_cpu: &[Duration]) -> f64 {
    let spread: Vec<Duration> = two_threads_cpu
        .iter()
        .map(|cpu| cpu.div_f64(cores() as f64))
        .collect();
    median_ratio(one_thread_wall, &spread)
}

/// A table of ratios against their targets: the median of the rounds (met or not), the lowest and
/// highest round, and how many rounds met it. Three decimals, so that a ratio just under its target
/// does not print as equal to it beside "no".
fn print_targets(rows: impl IntoIterator<Item = (String, Rounds, f64)>) {
    println!(
        "| ratio | measured | lowest and highest round | target | met | rounds that met it |\n|---|---|---|---|---|---|"
    );
    for (what, rounds, target) in rows {
        let measured = rounds.median();
        let met = if measured >= target { "yes" } else { "no" };
        let (lowest, highest) = (
            rounds.0.first().copied().unwrap_or(0.0),
            rounds.0.last().copied().unwrap_or(0.0),
        );
        let meeting = rounds.0.iter().filter(|&&ratio| ratio >= target).count();
        println!(
            "| {what} | {measured:.3}x | {lowest:.3}x to {highest:.3}x | >= {target:.2}x | {met} | {meeting} of {} |",
            rounds.0.len()
        );
    }
}

/// The events as one NDJSON text.
fn ndjson_text(events: &[String]) -> String {
    let mut text = String::with_capacity(streams::bytes(events) as usize);
    for event in events {
        text.push_str(event);
        text.push('\n');
    }
    text
}

/// Events of each CloudTrail delivery file in the `deliveries` section: S3 receives a file every
/// five minutes or so per account and region, holding from a few events to thousands.
const DELIVERY_EVENTS: usize = 500;

/// The mixed stream as S3 delivers CloudTrail: gzip delivery documents (`{"Records": [...]}`) of
/// [`DELIVERY_EVENTS`] events, scanned as the README's rollout scans them (`newterms scan
/// *.json.gz`), with one thread and with two: with threads, each reads whole files of its own.
fn delivery_files(mixed: &[String], scratch: &Path) {
    let events: Vec<String> = mixed.iter().cycle().take(SCAN_EVENTS).cloned().collect();
    let directory = scratch.join("deliveries");
    std::fs::create_dir_all(&directory).expect("deliveries directory");
    let files: Vec<PathBuf> = events
        .chunks(DELIVERY_EVENTS)
        .enumerate()
        .map(|(index, records)| {
            let path = directory.join(format!("{index:06}.json.gz"));
            let document = format!("{{\"Records\":[{}]}}", records.join(","));
            std::fs::write(&path, gzipped(document.as_bytes())).expect("write delivery file");
            path
        })
        .collect();
    let start_cost = scan_time(scratch, "empty.ndjson", b"");
    let [one, two] = in_turns([
        &mut || scan_files_once(&files, &["--threads", "1"]),
        &mut || scan_files_once(&files, &["--threads", "2"]),
    ]);
    let (one_net, two_net) = (minus_start(&one, start_cost), minus_start(&two, start_cost));
    let bytes = streams::bytes(&events);
    println!(
        "\n## Delivery files (`newterms scan` over the mixed stream's {SCAN_EVENTS} events as {} gzip delivery files of {DELIVERY_EVENTS})\n",
        files.len()
    );
    println!(
        "| `--threads 1` minus start | `--threads 2` minus start | two / one |\n|---|---|---|"
    );
    println!(
        "| {} | {} | {:.2}x |",
        rate(SCAN_EVENTS, bytes, median(one_net.clone())),
        rate(SCAN_EVENTS, bytes, median(two_net.clone())),
        median_ratio(&one_net, &two_net)
    );
    println!(
        "\n(each rate the median of {ROUNDS} runs in turns, minus the start on an empty file, {:.1} ms; no target: the README's rollout)",
        start_cost.as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&directory);
}

/// `bytes` compressed with gzip at the fast level (as a log shipper would write it).
fn gzipped(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Median wall time of `newterms scan` over a file holding `content` (alerts to /dev/null).
fn scan_time(dir: &Path, name: &str, content: &[u8]) -> Duration {
    let [time] = scan_times_in_turns(dir, name, content, [&[]]);
    time
}

/// Each of `runs` minus `start` (at least a microsecond): the runs' own work.
fn minus_start(runs: &[Duration], start: Duration) -> Vec<Duration> {
    runs.iter()
        .map(|run| run.saturating_sub(start).max(Duration::from_micros(1)))
        .collect()
}

/// Median wall times of `newterms scan` over one file holding `content`, with each set of
/// `arguments` in turn (a, b, a, b...), so that a load on the machine weighs on each alike.
fn scan_times_in_turns<const N: usize>(
    dir: &Path,
    name: &str,
    content: &[u8],
    arguments: [&[&str]; N],
) -> [Duration; N] {
    scan_samples_in_turns(dir, name, content, arguments).map(median)
}

/// [`scan_times_in_turns`], each round's time rather than their median.
fn scan_samples_in_turns<const N: usize>(
    dir: &Path,
    name: &str,
    content: &[u8],
    arguments: [&[&str]; N],
) -> [Vec<Duration>; N] {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write stream file");
    let at = path.as_path();
    let mut runs = arguments.map(|arguments| move || scan_once(at, arguments));
    let samples = in_turns(
        runs.each_mut()
            .map(|run| run as &mut dyn FnMut() -> Duration),
    );
    let _ = std::fs::remove_file(&path);
    samples
}

/// Runs each of `runs` once per round, in turn (a, b, c, a, b, c...), for [`ROUNDS`] rounds, so that
/// a change in the machine's speed weighs on each alike: each one's time per round.
fn in_turns<const N: usize>(mut runs: [&mut dyn FnMut() -> Duration; N]) -> [Vec<Duration>; N] {
    let mut samples: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::new());
    for _ in 0..ROUNDS {
        for (run, samples) in runs.iter_mut().zip(&mut samples) {
            samples.push(run());
        }
    }
    samples
}

/// A ratio taken in each round of [`in_turns`], lowest first: on a shared machine one figure
/// hides how far the rounds were apart, which decides whether a target is met with room or by luck.
struct Rounds(Vec<f64>);

impl Rounds {
    /// `numerator`'s time over `denominator`'s, round by round.
    fn of(numerator: &[Duration], denominator: &[Duration]) -> Self {
        let mut ratios: Vec<f64> = numerator
            .iter()
            .zip(denominator)
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64().max(1e-9))
            .collect();
        ratios.sort_by(f64::total_cmp);
        Self(ratios)
    }

    fn median(&self) -> f64 {
        self.0.get(self.0.len() / 2).copied().unwrap_or(0.0)
    }

    /// Every round's ratio times `factor` (rates over different event counts).
    fn scaled(self, factor: f64) -> Self {
        Self(self.0.into_iter().map(|ratio| ratio * factor).collect())
    }
}

/// The median, over the rounds of [`in_turns`], of `numerator`'s time over `denominator`'s.
fn median_ratio(numerator: &[Duration], denominator: &[Duration]) -> f64 {
    Rounds::of(numerator, denominator).median()
}

/// The wall time of one `newterms scan` of `path` with `arguments` (alerts to /dev/null).
fn scan_once(path: &Path, arguments: &[&str]) -> Duration {
    scan_files_once(std::slice::from_ref(&path), arguments)
}

/// [`scan_once`], and the CPU time (user and system) the process spent, where the system tells it.
fn scan_once_with_cpu(path: &Path, arguments: &[&str]) -> (Duration, Option<Duration>) {
    let before = children_cpu();
    let wall = scan_once(path, arguments);
    let cpu = children_cpu()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before));
    (wall, cpu)
}

/// The CPU time of this process's children that have ended and been waited for, from Linux's
/// `/proc/self/stat` (its `cutime` and `cstime`, in the kernel's fixed 100 ticks a second);
/// `None` elsewhere.
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command's name, in parentheses, field 3 (the state) comes first.
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace().skip(13);
    let mut ticks = || fields.next()?.parse::<u64>().ok();
    let (user, system) = (ticks()?, ticks()?);
    Some(Duration::from_millis((user + system) * 10))
}

/// [`scan_once`] over several files, in order.
fn scan_files_once(paths: &[impl AsRef<Path>], arguments: &[&str]) -> Duration {
    let start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_newterms"))
        .arg("scan")
        .args(arguments)
        .args(paths.iter().map(AsRef::as_ref))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run newterms");
    let elapsed = start.elapsed();
    assert!(status.success());
    elapsed
}

/// A scan's start file (the first [`START_EVENTS`] of `events`, as NDJSON), and the events and
/// bytes its rate then counts: the others.
fn start_file(events: &[String]) -> (String, usize, u64) {
    let (first, others) = events.split_at(START_EVENTS.min(events.len()));
    (ndjson_text(first), others.len(), streams::bytes(others))
}

/// Native breakdown of a stream: what each stage costs on its own.
fn where_the_time_goes(events: &[String], name: &str) {
    let bytes = streams::bytes(events);
    let n = events.len();
    println!("## Where the time goes (native, {name} stream)\n");
    println!("| stage | rate |\n|---|---|");
    let needle = newterms_guest::prefilter::Needle::for_rule();
    let finder = memchr::memmem::Finder::new("lambda.amazonaws.com");
    let floor = time(
        || (),
        |()| {
            for event in events {
                std::hint::black_box(finder.find(event.as_bytes()));
            }
        },
    );
    println!(
        "| memmem for the needle only (floor) | {} |",
        rate(n, bytes, floor)
    );
    let prefilter = time(
        || (),
        |()| {
            for event in events {
                std::hint::black_box(needle.skips(event.as_bytes()));
            }
        },
    );
    println!(
        "| prefilter only (one vector pass: needle, odd bytes, edges) | {} |",
        rate(n, bytes, prefilter)
    );
    let scan = time(
        || (),
        |()| {
            for event in events {
                std::hint::black_box(newterms_guest::fastpath::scan(event));
            }
        },
    );
    println!(
        "| fast-path scan only (validating, field extraction) | {} |",
        rate(n, bytes, scan)
    );
    let exact = time(
        || Detector::new(Config::default()).expect("config"),
        |detector| {
            for event in events {
                let _ = detector.process_exact(event);
            }
        },
    );
    println!(
        "| full path (`serde_json::Value`, ECS mapping) | {} |",
        rate(n, bytes, exact)
    );
    let full = time(
        || Detector::new(Config::default()).expect("config"),
        |detector| {
            for event in events {
                let _ = detector.process(event);
            }
        },
    );
    println!(
        "| `process` (prefilter + fast path + full path when needed) | {} |\n",
        rate(n, bytes, full)
    );
}

/// A snapshot of `TERMS` distinct terms, built natively in learn mode through the real engine.
fn million_term_snapshot() -> Vec<u8> {
    let mut detector = Detector::new(Config {
        learn: true,
        ..Config::default()
    })
    .expect("config");
    for index in 0..TERMS {
        let event = format!(
            r#"{{"eventVersion":"1.09","eventTime":"2024-05-01T00:{:02}:{:02}Z","eventSource":"lambda.amazonaws.com","eventName":"Invoke","recipientAccountId":"{:012}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::{:012}:user/service-user-{index:07}","accountId":"{:012}","userName":"service-user-{index:07}"}}}}"#,
            index / 60 % 60,
            index % 60,
            100_000_000_000 + index % 1000,
            100_000_000_000 + index % 1000,
            100_000_000_000 + index % 1000,
        );
        detector.process(&event).expect("valid");
    }
    assert_eq!(detector.stats().terms, TERMS as u64);
    detector.snapshot()
}

fn memory_and_snapshots(component: &RuleComponent, config: &RuleConfig) {
    println!("## History at {TERMS} terms\n");
    let snapshot = million_term_snapshot();

    // Native: live heap bytes of a detector restored from the snapshot.
    let before = LIVE.load(Ordering::Relaxed);
    let mut native = Detector::new(Config::default()).expect("config");
    let restore_native = Instant::now();
    native.restore(&snapshot).expect("restore");
    let restore_native = restore_native.elapsed();
    let native_live = LIVE.load(Ordering::Relaxed) - before;
    let footprint = native.footprint();
    let save_native = Instant::now();
    let saved = native.snapshot();
    let save_native = save_native.elapsed();
    assert_eq!(saved, snapshot, "snapshot format is stable through restore");
    drop(saved);

    // Component: linear memory growth and the history's own allocations.
    let mut rule = component.instantiate(config).expect("instance");
    let empty = rule.footprint().expect("footprint");
    let mut restore_times = Vec::new();
    let mut save_times = Vec::new();
    for _ in 0..3 {
        let mut fresh = component.instantiate(config).expect("instance");
        let start = Instant::now();
        fresh.restore(&snapshot).expect("restore");
        restore_times.push(start.elapsed());
        let start = Instant::now();
        let bytes = fresh.snapshot().expect("snapshot");
        save_times.push(start.elapsed());
        assert_eq!(bytes.len(), snapshot.len());
    }
    rule.restore(&snapshot).expect("restore");
    rule.snapshot().expect("snapshot");
    // After a restore and a save: pieces cross the boundary, so neither leaves a whole snapshot's
    // worth of linear memory behind.
    let full = rule.footprint().expect("footprint");
    let per_term = |bytes: u64| (bytes as f64 - full.term_bytes as f64) / TERMS as f64;

    println!("| measure | native | component |\n|---|---|---|");
    println!(
        "| term bytes (encoded values), per term | {:.1} B | {:.1} B |",
        footprint.term_bytes as f64 / TERMS as f64,
        full.term_bytes as f64 / TERMS as f64
    );
    println!(
        "| history allocations beyond the term bytes, per term | {:.1} B | {:.1} B |",
        per_term(footprint.history_bytes),
        per_term(full.history_bytes)
    );
    println!(
        "| all live heap (native) / linear memory growth after a restore and a save (component) beyond the term bytes, per term | {:.1} B | {:.1} B |",
        per_term(native_live as u64),
        per_term(full.linear_memory_bytes - empty.linear_memory_bytes)
    );
    println!(
        "| snapshot size | {:.1} MB ({:.1} B/term) | same bytes |",
        snapshot.len() as f64 / 1e6,
        snapshot.len() as f64 / TERMS as f64
    );
    let restore_component = median(restore_times);
    let save_component = median(save_times);
    println!(
        "| snapshot save | {:.0} ms | {:.0} ms |",
        save_native.as_secs_f64() * 1e3,
        save_component.as_secs_f64() * 1e3
    );
    println!(
        "| snapshot restore | {:.0} ms | {:.0} ms |",
        restore_native.as_secs_f64() * 1e3,
        restore_component.as_secs_f64() * 1e3
    );
    println!(
        "| save + restore | {:.0} ms | {:.0} ms |\n",
        (save_native + restore_native).as_secs_f64() * 1e3,
        (save_component + restore_component).as_secs_f64() * 1e3
    );
}

fn cold_start(scratch: &Path) {
    println!("## Cold start: new engine, load, instantiate, first event (median of {RUNS})\n");
    let event = streams::lambda_invoke(0, "2024-05-01T00:00:00Z");
    let cache = scratch.join("cache");
    let run = |cached: bool| {
        let start = Instant::now();
        let sandbox = Sandbox::new(Limits::default()).expect("engine");
        let component = if cached {
            RuleComponent::embedded_cached(&sandbox, &cache).expect("component")
        } else {
            RuleComponent::embedded(&sandbox).expect("component")
        };
        let mut rule = component
            .instantiate(&RuleConfig::default())
            .expect("instance");
        rule.process_event(&event).expect("no trap").expect("event");
        start.elapsed()
    };
    // Fill the cache once.
    run(true);
    let compiled = median((0..RUNS).map(|_| run(false)).collect());
    let precompiled = median((0..RUNS).map(|_| run(true)).collect());
    println!("| load | time |\n|---|---|");
    println!(
        "| compile the component | {:.2} ms |",
        compiled.as_secs_f64() * 1e3
    );
    println!(
        "| precompiled, from the host's cache | {:.2} ms |",
        precompiled.as_secs_f64() * 1e3
    );
}

/// Elastic's published new_terms rules (`shared/data/elastic-rules/new_terms` beside the
/// repository), if present.
fn published_rules() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .ok()?;
    root.ancestors()
        .skip(1)
        .map(|folder| folder.join("shared/data/elastic-rules/new_terms"))
        .find(|path| path.is_dir())
}

/// `newterms scan` on the mixed stream with the built-in rule, with the 49 AWS CloudTrail rules
/// from their files, and with all 221 published rules: one pass over each event in each case.
fn rule_packs(mixed: &[String], scratch: &Path) {
    let Some(folder) = published_rules() else {
        println!("\n## Rule packs\n\nskipped: shared/data/elastic-rules/new_terms not found");
        return;
    };
    let mut all = Vec::new();
    let cloudtrail = scratch.join("cloudtrail-rules");
    std::fs::create_dir_all(&cloudtrail).expect("rule folder");
    for entry in std::fs::read_dir(&folder).expect("rule folder").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let text = std::fs::read_to_string(&path).expect("rule file");
            if text.contains("logs-aws.cloudtrail") {
                std::fs::write(cloudtrail.join(entry.file_name()), text).expect("copy rule");
            }
            all.push(path);
        }
    }
    let count = std::fs::read_dir(&cloudtrail).map_or(0, Iterator::count);
    let events: Vec<String> = mixed.iter().cycle().take(SCAN_EVENTS).cloned().collect();
    let text = ndjson_text(&events);
    let (cloudtrail, folder) = (
        cloudtrail.display().to_string(),
        folder.display().to_string(),
    );
    let rule_sets: [(String, Vec<&str>); 3] = [
        ("built-in Lambda rule".to_owned(), vec![]),
        (
            format!("{count} AWS CloudTrail rule files"),
            vec!["--rules", &cloudtrail],
        ),
        (
            format!("{} published rule files", all.len()),
            vec!["--rules", &folder],
        ),
    ];
    // Every rule set at one and at two threads, in turns, so that a load weighs on each alike.
    let arguments: Vec<Vec<&str>> = rule_sets
        .iter()
        .flat_map(|(_, rules)| {
            ["1", "2"].map(|threads| [&["--threads", threads][..], rules].concat())
        })
        .collect();
    let [a, b, c, d, e, f] = std::array::from_fn(|index| arguments[index].as_slice());
    let rounds = scan_samples_in_turns(
        scratch,
        "rules-mixed.ndjson",
        text.as_bytes(),
        [a, b, c, d, e, f],
    );
    // Each set's own start: a pack compiles its rules in every instance, and `--threads N` makes
    // an instance per extracting thread at its first batch, so the start is timed on the stream's
    // first START_EVENTS events (batches enough to reach every thread), which the rate then leaves out.
    let (start, counted_events, counted_bytes) = start_file(&events);
    let starts = scan_times_in_turns(
        scratch,
        "rules-start.ndjson",
        start.as_bytes(),
        [a, b, c, d, e, f],
    );
    // Each round's time minus the set's start; a ratio is the median of the rounds' ratios.
    let net_rounds: Vec<Vec<Duration>> = rounds
        .iter()
        .zip(&starts)
        .map(|(runs, start)| minus_start(runs, *start))
        .collect();
    let net = |index: usize| median(net_rounds[index].clone()).as_secs_f64();
    let over = |fast: usize, slow: usize| Rounds::of(&net_rounds[fast], &net_rounds[slow]);
    println!("\n## Rule packs (`newterms scan`, mixed stream, {SCAN_EVENTS} events)\n");
    println!(
        "| rules | `--threads 1` minus start | vs built-in | `--threads 2` minus start | vs built-in | two threads / one |"
    );
    println!("|---|---|---|---|---|---|");
    let mut targets = Vec::new();
    for (set, (name, _)) in rule_sets.iter().enumerate() {
        let (one, two) = (2 * set, 2 * set + 1);
        let rate_of = |index: usize| {
            rate(
                counted_events,
                counted_bytes,
                Duration::from_secs_f64(net(index)),
            )
        };
        println!(
            "| {name} | {} | {:.2}x | {} | {:.2}x | {:.2}x |",
            rate_of(one),
            over(0, one).median(),
            rate_of(two),
            over(1, two).median(),
            over(one, two).median()
        );
        let target = [None, Some(0.5), Some(0.25)][set];
        if let Some(target) = target {
            targets.push((
                format!("{name} / built-in, one thread"),
                over(0, one),
                target,
            ));
            targets.push((
                format!("{name} / built-in, two threads"),
                over(1, two),
                target,
            ));
        }
    }
    println!();
    print_targets(targets);
    let starts: Vec<String> = starts
        .iter()
        .map(|start| format!("{:.0}", start.as_secs_f64() * 1e3))
        .collect();
    println!(
        "\n(each rate the median of {ROUNDS} runs in turns, each ratio the median of the rounds' ratios, minus the same command's start, timed on the stream's first {START_EVENTS} events so that every extracting thread makes its instance: {} ms in the table's order; the rate is of the other {} events)",
        starts.join(", "),
        counted_events
    );
    ecs_rows(&events, scratch, &rule_sets, [a, c, e]);
}

/// The rule sets at one thread (`one_thread`, their arguments) on the first [`ECS_EVENTS`] events
/// as Elastic's pipeline stores them: ECS documents, the input of every rule that is not about
/// CloudTrail.
fn ecs_rows(
    events: &[String],
    scratch: &Path,
    rule_sets: &[(String, Vec<&str>); 3],
    one_thread: [&[&str]; 3],
) {
    let ecs: Vec<String> = events
        .iter()
        .take(ECS_EVENTS)
        .map(|line| match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(record))
                if newterms_guest::cloudtrail::is_raw_record(&record) =>
            {
                newterms_guest::cloudtrail::to_ecs(&record).to_string()
            }
            _ => line.clone(),
        })
        .collect();
    let times = scan_times_in_turns(
        scratch,
        "rules-ecs.ndjson",
        ndjson_text(&ecs).as_bytes(),
        one_thread,
    );
    let (start, counted_events, counted_bytes) = start_file(&ecs);
    let starts = scan_times_in_turns(
        scratch,
        "rules-ecs-start.ndjson",
        start.as_bytes(),
        one_thread,
    );
    println!(
        "\n| rules | the same events as ECS documents ({ECS_EVENTS}), `--threads 1` minus start |\n|---|---|"
    );
    for ((name, _), (time, start)) in rule_sets.iter().zip(times.iter().zip(&starts)) {
        let net = time.saturating_sub(*start).max(Duration::from_micros(1));
        println!("| {name} | {} |", rate(counted_events, counted_bytes, net));
    }
}

/// `newterms scan` on a stream where every event raises an alert: each alert is made by the full
/// path (the parse, the ECS document, the alert document), so this is its rate, not the fast
/// path's.
fn alert_storm(scratch: &Path) {
    let events = streams::new_term_stream(ALERT_EVENTS);
    let text = ndjson_text(&events);
    let one: &[&str] = &["--threads", "1"];
    let two: &[&str] = &["--threads", "2"];
    let rounds = scan_samples_in_turns(scratch, "alerts.ndjson", text.as_bytes(), [one, two]);
    let (start, counted_events, counted_bytes) = start_file(&events);
    let starts = scan_times_in_turns(scratch, "alerts-start.ndjson", start.as_bytes(), [one, two]);
    println!("\n## Alerts (`newterms scan`, {ALERT_EVENTS} events, each a new term)\n");
    println!("| built-in rule | `--threads 1` minus start | `--threads 2` minus start |");
    println!("|---|---|---|");
    let [one, two] = [0, 1].map(|index| {
        let net = median(minus_start(&rounds[index], starts[index])).as_secs_f64();
        format!(
            "{:.1} thousand/s ({:.0} MB/s)",
            counted_events as f64 / net / 1e3,
            counted_bytes as f64 / net / 1e6
        )
    });
    println!("| every event an alert | {one} | {two} |");
}

/// `newterms scan --state` on the mixed stream with a history of a million terms: what the
/// scan's checkpoints and recovery points cost once each is a snapshot of tens of megabytes. The
/// state file is written afresh before each run (not timed); each rate is minus the same
/// command's start on the stream's first events, which restores and saves the same state.
fn large_history(mixed: &[String], scratch: &Path) {
    let snapshot = million_term_snapshot();
    let events: Vec<String> = mixed.iter().cycle().take(SCAN_EVENTS).cloned().collect();
    let (start, counted_events, counted_bytes) = start_file(&events);
    let whole = scratch.join("history-mixed.ndjson");
    let first = scratch.join("history-start.ndjson");
    std::fs::write(&whole, ndjson_text(&events)).expect("write stream file");
    std::fs::write(&first, start).expect("write start file");
    let state = scratch.join("history.state");
    let state_text = state.display().to_string();
    // The state and what a run leaves beside it.
    let remove_state = || {
        for leftover in ["", ".checkpoint", ".lock"] {
            let _ = std::fs::remove_file(format!("{state_text}{leftover}"));
        }
    };
    let scan_with_history = |input: &Path, threads: &str| {
        remove_state();
        std::fs::write(&state, &snapshot).expect("write state");
        scan_once(input, &["--threads", threads, "--state", &state_text])
    };
    let [one, two, one_start, two_start] = in_turns([
        &mut || scan_with_history(&whole, "1"),
        &mut || scan_with_history(&whole, "2"),
        &mut || scan_with_history(&first, "1"),
        &mut || scan_with_history(&first, "2"),
    ]);
    let [plain_one, plain_two, plain_one_start, plain_two_start] = in_turns([
        &mut || scan_once(&whole, &["--threads", "1"]),
        &mut || scan_once(&whole, &["--threads", "2"]),
        &mut || scan_once(&first, &["--threads", "1"]),
        &mut || scan_once(&first, &["--threads", "2"]),
    ]);
    let net = |runs: &[Duration], starts: Vec<Duration>| {
        let net = median(minus_start(runs, median(starts)));
        rate(counted_events, counted_bytes, net)
    };
    println!(
        "\n## A large history (`newterms scan --state`, mixed stream, {SCAN_EVENTS} events, {} MB state)\n",
        snapshot.len() / 1_000_000
    );
    println!("| history | `--threads 1` minus start | `--threads 2` minus start |");
    println!("|---|---|---|");
    println!(
        "| none (no `--state`) | {} | {} |",
        net(&plain_one, plain_one_start),
        net(&plain_two, plain_two_start)
    );
    println!(
        "| {TERMS} terms | {} | {} |",
        net(&one, one_start),
        net(&two, two_start)
    );
    remove_state();
    let _ = std::fs::remove_file(&whole);
    let _ = std::fs::remove_file(&first);
}
