//! Mutation fuzzing of the guest's two entry points that take outside bytes: `process` (events) and
//! `restore` (snapshots). Stable Rust has no cargo-fuzz, so this is a small coverage-blind mutator
//! seeded with real CloudTrail records, ECS documents and valid snapshots. It checks that nothing
//! panics (a panic is a trap in the component) and that memory stays within a bound proportional to
//! the input.
//!
//! Each target runs for `NEWTERMS_FUZZ_SECONDS` (default 3) and prints its executions:
//! `NEWTERMS_FUZZ_SECONDS=300 cargo test --release -p newterms-guest --test fuzz -- --nocapture`.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use newterms_guest::{Config, Detector};

mod common;
use common::Rng;

/// Counts live heap bytes and their peak, to bound what one input may make the guest allocate.
struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)] // a global allocator is an unsafe trait; this one only counts and delegates
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the layout is passed through unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `pointer` came from `alloc` above with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u002e",
    b"\\u0000",
    b"\\ud800",
    b":",
    b",",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"18446744073709551616",
    b"\"\"",
    b"{}",
    b"[]",
    b"\"Invoke\"",
    b"\"lambda.amazonaws.com\"",
    b"\"invokedBy\"",
    b"\"userName\"",
    b"\"@timestamp\"",
    b"\xc3\xa9",
    b"\"eventTime\": \"2024-02-30T00:00:00Z\"",
    b"\"user.name\"",
    b"[[[[[[[[",
    b"]]]]]]]]",
];

fn mutate(random: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + random.below(4) {
        let at = random.below(input.len() + 1);
        match random.below(8) {
            0 if !input.is_empty() => {
                let index = random.below(input.len());
                input[index] ^= 1 << random.below(8);
            }
            1 if !input.is_empty() => {
                let end = (at + random.below(32)).min(input.len());
                input.drain(at..end);
            }
            2 => input.truncate(at),
            3 => {
                let token = TOKENS[random.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            4 => {
                let other = &seeds[random.below(seeds.len())];
                let start = random.below(other.len());
                let end = (start + random.below(256)).min(other.len());
                input.splice(at..at, other[start..end].iter().copied());
            }
            5 if !input.is_empty() => {
                let start = random.below(input.len());
                let end = (start + random.below(64)).min(input.len());
                let copy = input[start..end].to_vec();
                input.splice(at..at, copy);
            }
            6 => {
                let depth = random.below(300);
                let mut wrapped = b"{\"a\":[".repeat(depth);
                wrapped.extend_from_slice(input);
                wrapped.extend(b"]}".repeat(depth));
                *input = wrapped;
            }
            _ => {
                let digit = b'0' + random.below(10) as u8;
                input.insert(at, digit);
            }
        }
    }
}

fn budget() -> Duration {
    let seconds = std::env::var("NEWTERMS_FUZZ_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

fn event_seeds() -> Vec<Vec<u8>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut seeds = Vec::new();
    for file in [
        "tests/fixtures/cloudtrail/lambda_invoke.ndjson",
        "examples/lambda-invocations.ndjson",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).expect("seed file");
        seeds.extend(text.lines().map(|line| line.as_bytes().to_vec()));
    }
    seeds.push(
        br#"{"@timestamp":"2024-01-01T00:00:00Z","data_stream.dataset":"aws.cloudtrail","event":{"provider":"lambda.amazonaws.com","action":["Invoke"],"outcome":"success"},"cloud.account.id":"1","user":{"name":["a","b"]},"aws.cloudtrail":{"user_identity.arn":"arn:x"}}"#.to_vec(),
    );
    seeds
}

/// Runs `target` on mutated inputs for the time budget; returns how many ran.
fn fuzz(seeds: &[Vec<u8>], seed: u64, mut target: impl FnMut(&[u8])) -> u64 {
    let mut random = Rng(seed);
    let deadline = Instant::now() + budget();
    let mut executions = 0;
    while Instant::now() < deadline {
        let mut input = seeds[random.below(seeds.len())].clone();
        mutate(&mut random, seeds, &mut input);
        let baseline = LIVE.load(Ordering::Relaxed);
        PEAK.store(baseline, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);
        assert!(
            outcome.is_ok(),
            "panic on input {:?}",
            String::from_utf8_lossy(&input)
        );
        assert!(
            used <= 64 * input.len() + (4 << 20),
            "{used} bytes for an input of {} bytes: {:?}",
            input.len(),
            String::from_utf8_lossy(&input)
        );
        executions += 1;
    }
    executions
}

#[test]
fn events_never_panic_and_stay_in_bounds() {
    let seeds = event_seeds();
    // One detector across inputs, so that history grows and later inputs meet a populated state.
    let mut detector = Detector::new(Config {
        capacity: Some(10_000),
        ..Config::default()
    })
    .expect("config");
    let executions = fuzz(&seeds, 0x5eed, |input| {
        let _ = detector.process(&String::from_utf8_lossy(input));
    });
    eprintln!("fuzz process-event: {executions} executions, no panic");
    assert!(executions > 100);
}

#[test]
fn restore_never_panics_and_what_it_accepts_works() {
    let mut detector = Detector::new(Config::default()).expect("config");
    for line in event_seeds() {
        let _ = detector.process(&String::from_utf8_lossy(&line));
    }
    let seeds = vec![
        detector.snapshot(),
        include_bytes!("../../tests/fixtures/state/snapshot-v1.bin").to_vec(),
        Detector::new(Config::default()).expect("config").snapshot(),
    ];
    let mut accepted = 0;
    let executions = fuzz(&seeds, 0xbadc0de, |input| {
        let mut target = Detector::new(Config::default()).expect("config");
        let whole = target.restore(input);
        // The same bytes in pieces (of a size the input picks) decide the same.
        let size = 1 + input.iter().map(|&byte| usize::from(byte)).sum::<usize>() % 61;
        let mut pieces = Detector::new(Config::default()).expect("config");
        pieces.restore_begin(input.len() as u64);
        let in_pieces = input
            .chunks(size)
            .try_for_each(|piece| pieces.restore_write(piece))
            .and_then(|()| pieces.restore_end());
        assert_eq!(in_pieces, whole, "pieces of {size}");
        if whole.is_ok() {
            accepted += 1;
            let again = target.snapshot();
            pieces.snapshot_begin();
            let read: Vec<u8> = std::iter::from_fn(|| Some(pieces.snapshot_read(size)))
                .take_while(|piece| !piece.is_empty())
                .flatten()
                .collect();
            assert_eq!(read, again, "a snapshot read in pieces of {size}");
            target
                .restore(&again)
                .expect("a restored history snapshots and restores again");
        }
    });
    eprintln!(
        "fuzz restore: {executions} executions, {accepted} accepted (mutations that kept the checksum), no panic"
    );
    assert!(executions > 100);
}
