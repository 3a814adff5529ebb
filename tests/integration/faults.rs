//! A host that survives its plugin: a hostile component (tests/hostile-guest) that traps, loops,
//! hoards memory or answers garbage on marker events. The host stops each misbehaviour at its limit,
//! sets the event aside with the reason, and loses nothing that the good events produced.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use newterms::input::{Input, InputReader, Position};
use newterms::scan::{
    BatchLimits, DeadLetter, Diagnostic, ScanEnd, ScanOptions, ScanSummary, Scanner, Sink,
};
use newterms::{Error, Fault, Limits, RuleComponent, RuleConfig, Sandbox};
use serde_json::{Value, json};

use crate::support::{
    HOSTILE_MARKERS, direct_invoke, event_ids, hostile_stream, marked, newterms, scratch,
    write_ndjson,
};

const HOSTILE: &str = newterms_test_artifacts::HOSTILE_COMPONENT;

fn hostile(limits: Limits) -> RuleComponent {
    let sandbox = Sandbox::new(limits).expect("engine");
    RuleComponent::from_file(&sandbox, &PathBuf::from(HOSTILE)).expect("hostile component loads")
}

fn tight_limits() -> Limits {
    Limits {
        max_memory_bytes: 64 << 20,
        call_deadline: Duration::from_millis(200),
    }
}

#[test]
fn each_misbehaviour_is_stopped_and_named() {
    let component = hostile(tight_limits());
    let cases = [
        ("NEWTERMS_TRAP", Fault::Trap),
        (
            "NEWTERMS_LOOP",
            Fault::CpuDeadline(Duration::from_millis(200)),
        ),
        ("NEWTERMS_ALLOC", Fault::MemoryLimit(64 << 20)),
    ];
    for (marker, expected) in cases {
        let mut rule = component
            .instantiate(&RuleConfig::default())
            .expect("instance");
        match rule.process_event(&marked("mallory", marker).to_string()) {
            Err(Error::Guest { fault, .. }) => assert_eq!(fault, expected, "{marker}"),
            other => panic!("{marker}: expected a fault, got {other:?}"),
        }
    }
    let mut rule = component
        .instantiate(&RuleConfig::default())
        .expect("instance");
    match rule.process_event(&marked("mallory", "NEWTERMS_MALFORMED").to_string()) {
        Err(Error::Guest {
            fault: Fault::Malformed(what),
            ..
        }) => {
            assert!(what.contains("not a JSON object"), "{what}");
        }
        other => panic!("expected a malformed answer, got {other:?}"),
    }
}

#[test]
fn the_scan_goes_on_and_loses_nothing() {
    let directory = scratch("hostile-scan");
    let markers = HOSTILE_MARKERS;
    let mut stream = Vec::new();
    let mut good = Vec::new();
    for index in 0..400 {
        let event = direct_invoke(&format!("user-{index}"), "2024-02-01T00:00:00Z");
        good.push(event.clone());
        stream.push(event);
        if index % 100 == 50 {
            // The poison event's principal alerts later: the failed event must not count as history.
            stream.push(marked("poisoned", markers[index / 100]));
        }
    }
    let late = direct_invoke("poisoned", "2024-02-02T00:00:00Z");
    good.push(late.clone());
    stream.push(late);
    let input = directory.join("stream.ndjson");
    let good_only = directory.join("good.ndjson");
    write_ndjson(&input, &stream);
    write_ndjson(&good_only, &good);

    let dead_letters = directory.join("dead.ndjson");
    let run = newterms(
        &[
            "scan",
            "--rule",
            HOSTILE,
            "--cpu-deadline-ms",
            "200",
            "--max-memory",
            "64",
            "--batch-size",
            "64",
            "--dead-letter",
            dead_letters.to_str().expect("path"),
            input.to_str().expect("path"),
        ],
        b"",
    );
    assert!(run.status.success(), "{}", run.stderr);
    let reference = newterms(&["scan", good_only.to_str().expect("path")], b"");
    assert_eq!(event_ids(&run.alerts), event_ids(&reference.alerts));
    assert_eq!(run.alerts.len(), 401);
    assert!(run.stderr.contains("4 events set aside"), "{}", run.stderr);

    let letters: Vec<Value> = std::fs::read_to_string(&dead_letters)
        .expect("dead letters written")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(letters.len(), 4);
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(reasons[0].contains("trapped"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("CPU deadline of 200 ms"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].contains("memory limit of 64 MiB"),
        "{}",
        reasons[2]
    );
    assert!(reasons[3].contains("not a JSON object"), "{}", reasons[3]);
    for (letter, marker) in letters.iter().zip(markers) {
        assert!(letter["event"].as_str().unwrap_or("").contains(marker));
        assert!(
            letter["location"]
                .as_str()
                .unwrap_or("")
                .contains("stream.ndjson:")
        );
    }
}

/// A trap after the scan has taken recovery points of its own (the journal is cut every few MiB
/// while the history is small): the new instance starts from the last one, replays only what came
/// after it, and the alerts are those of a scan without the poison event, none doubled, none lost.
#[test]
fn recovery_after_the_journal_was_cut() {
    let directory = scratch("hostile-long-scan");
    let time = |index: usize| {
        format!(
            "2024-02-01T{:02}:{:02}:{:02}Z",
            index / 3600,
            index / 60 % 60,
            index % 60
        )
    };
    let (mut stream, mut good) = (Vec::new(), Vec::new());
    for index in 0..40_000 {
        // 300 principals: each alerts once, at its first invoke.
        let event = direct_invoke(&format!("user-{}", index % 300), &time(index));
        good.push(event.clone());
        stream.push(event);
        if index == 34_000 {
            stream.push(marked("poisoned", "NEWTERMS_TRAP"));
        }
    }
    let late = direct_invoke("poisoned", &time(40_000));
    good.push(late.clone());
    stream.push(late);
    let input = directory.join("stream.ndjson");
    let good_only = directory.join("good.ndjson");
    write_ndjson(&input, &stream);
    write_ndjson(&good_only, &good);
    assert!(
        std::fs::metadata(&input).expect("written").len() > 2 * (8 << 20),
        "the stream must outgrow the shortest journal twice"
    );

    let dead_letters = directory.join("dead.ndjson");
    let run = newterms(
        &[
            "scan",
            "--rule",
            HOSTILE,
            "--dead-letter",
            dead_letters.to_str().expect("path"),
            input.to_str().expect("path"),
        ],
        b"",
    );
    assert!(run.status.success(), "{}", run.stderr);
    let reference = newterms(&["scan", good_only.to_str().expect("path")], b"");
    assert_eq!(run.alerts.len(), 301);
    assert_eq!(event_ids(&run.alerts), event_ids(&reference.alerts));
    assert!(run.stderr.contains("1 events set aside"), "{}", run.stderr);
}

/// Keeps what a scan gives, as text: alerts, dead letters (event and place) and diagnostics.
#[derive(Default)]
struct Kept {
    alerts: Vec<String>,
    letters: Vec<(String, String)>,
    diagnostics: Vec<String>,
}

impl Sink for Kept {
    fn alert(&mut self, alert: &str) -> io::Result<()> {
        self.alerts.push(alert.to_owned());
        Ok(())
    }
    fn flush(&mut self, _: &ScanSummary) -> io::Result<()> {
        Ok(())
    }
    fn diagnostic(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(format!("{diagnostic:?}"));
    }
    fn dead_letter(&mut self, letter: &DeadLetter<'_>) -> io::Result<()> {
        self.letters
            .push((letter.event.to_owned(), letter.location.to_string()));
        Ok(())
    }
    fn checkpoint(&mut self, _: Position, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// One thread whose history is too large for a journal of events (here: a journal of one byte, so
/// that any snapshot is) splits each batch on its one instance, extraction then `decide`, and
/// journals the terms: every misbehaviour is set aside, and alerts, dead letters, diagnostics and
/// the summary are those of one thread that does not split, and of two threads.
#[test]
fn one_thread_that_journals_terms_fails_as_one_that_journals_events() {
    let directory = scratch("hostile-split-alone");
    let mut stream = hostile_stream();
    stream.insert(200, json!("not an object"));
    let input = directory.join("stream.ndjson");
    write_ndjson(&input, &stream);
    let component = hostile(tight_limits());
    let scan = |threads: usize, journal_bytes: usize| {
        let mut scanner = Scanner::new(&component, &RuleConfig::default(), None).expect("scanner");
        let options = ScanOptions {
            batch: BatchLimits {
                events: 16,
                ..BatchLimits::default()
            },
            threads,
            journal_bytes,
            ..ScanOptions::default()
        };
        let mut kept = Kept::default();
        let end = scanner
            .run(
                InputReader::new([Input::File(input.clone())]),
                &options,
                &mut kept,
            )
            .expect("scan");
        assert_eq!(end, ScanEnd::Finished);
        (
            kept.alerts,
            kept.letters,
            kept.diagnostics,
            scanner.summary(),
        )
    };
    let journals_events = scan(1, ScanOptions::default().journal_bytes);
    let journals_terms = scan(1, 1);
    let two_threads = scan(2, ScanOptions::default().journal_bytes);
    assert_eq!(journals_events.0.len(), 251);
    assert_eq!(journals_events.1.len(), 4);
    assert_eq!(journals_events.2.len(), 1, "{:?}", journals_events.2);
    assert_eq!(journals_terms, journals_events);
    assert_eq!(two_threads, journals_events);
}

/// The hostile guest is a test artifact: the product's build (its normal and build dependencies, its
/// build script) never builds it.
#[test]
fn product_builds_do_not_build_test_guests() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tree = std::process::Command::new(cargo)
        .args(["tree", "--offline", "--manifest-path", manifest])
        .args(["--package", "newterms", "--edges", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.contains("newterms-guest"), "{tree}");
    for test_only in ["newterms-test-artifacts", "newterms-hostile-guest"] {
        assert!(!tree.contains(test_only), "{test_only} in\n{tree}");
    }
    let build_script = include_str!("../../host/build.rs");
    assert!(!build_script.contains("hostile"));
    let dev = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["tree", "--offline", "--manifest-path", manifest])
        .args(["--package", "newterms", "--edges", "dev", "--depth", "1"])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo tree runs");
    assert!(String::from_utf8_lossy(&dev.stdout).contains("newterms-test-artifacts"));
}
