//! Crash safety as a library: a program of its own, with its own sink, gets exactly-once output
//! from `newterms::durable` as the CLI does.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use newterms::RuleConfig;
use newterms::checkpoint::{Completion, Fingerprint, RunIdentity};
use newterms::durable::{DurableError, DurableRun, TrackedFile};
use newterms::input::{Input, InputReader, Position};
use newterms::scan::{
    BatchLimits, DeadLetter, Diagnostic, ScanEnd, ScanOptions, ScanSummary, Scanner, Sink,
};

use crate::support::{component, direct_invoke, ended, scratch, write_ndjson};

/// A library user's sink: alerts to a tracked file, checkpoints through the durable run; it asks
/// the scan to stop once `stop_after` events were processed.
struct FileSink<'d> {
    alerts: TrackedFile,
    durable: &'d DurableRun,
    stop: Arc<AtomicBool>,
    stop_after: u64,
}

impl Sink for FileSink<'_> {
    fn alert(&mut self, alert: &str) -> io::Result<()> {
        writeln!(self.alerts, "{alert}")
    }
    fn flush(&mut self, progress: &ScanSummary) -> io::Result<()> {
        if progress.events >= self.stop_after {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.alerts.flush()
    }
    fn diagnostic(&mut self, _: Diagnostic) {}
    fn dead_letter(&mut self, _: &DeadLetter<'_>) -> io::Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self, position: Position, snapshot: &[u8]) -> io::Result<()> {
        self.durable
            .checkpoint(position, snapshot, Some(&mut self.alerts), None, None)
    }
}

/// One run of the library user's program; whether it finished.
fn run(input: &Path, state: &Path, alerts: &Path, stop_after: u64, crash: bool) -> bool {
    let identity = RunIdentity {
        inputs: vec![input.display().to_string()],
        output: Some(alerts.display().to_string()),
    };
    let completion = Fingerprint::of(input).ok().map(|file| Completion {
        files: vec![file],
        rule: "the embedded rule, default configuration".into(),
    });
    // The previous run's lock is released when its file closes, but a child process that another
    // test of this binary forks at that moment holds a copy of the descriptor until it execs: wait
    // for that, as a second process of the CLI would be told to.
    let mut waited = 0;
    let durable = loop {
        match DurableRun::open(Some(state), identity.clone(), completion.as_ref(), false) {
            Err(DurableError::Rule(newterms::Error::Locked { .. })) if waited < 100 => {
                waited += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => break opened.expect("durable run"),
        }
    };
    if durable.completed() {
        // This run, over the same file, ended before: nothing to do.
        return true;
    }
    let (history, _) = durable.history().expect("history");
    let mut scanner = Scanner::new(component(), &RuleConfig::default(), history).expect("scanner");
    let reader = match durable.resumed() {
        Some(checkpoint) => InputReader::resume([Input::File(input.into())], checkpoint.position),
        None => InputReader::new([Input::File(input.into())]),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut sink = FileSink {
        alerts: durable.output(alerts).expect("alert file"),
        durable: &durable,
        stop: Arc::clone(&stop),
        stop_after,
    };
    let options = ScanOptions {
        batch: BatchLimits {
            events: 10,
            ..BatchLimits::default()
        },
        stop: Some(stop),
        ..ScanOptions::default()
    };
    let end = scanner.run(reader, &options, &mut sink).expect("scan");
    if crash {
        // Alerts written after the checkpoint, then the process dies: no finish.
        writeln!(sink.alerts, "{{\"half written\": true}}").expect("write");
        sink.alerts.sync().expect("sync");
        return false;
    }
    sink.alerts.sync().expect("sync");
    let history = scanner.rule().snapshot().expect("snapshot");
    drop(sink);
    drop(scanner);
    durable.finish(Some(&history), completion).expect("finish");
    end == ScanEnd::Finished
}

#[test]
fn a_library_user_gets_exactly_once_output_across_a_crash() {
    let directory = scratch("durable-library");
    let input = directory.join("events.ndjson");
    let events: Vec<_> = (0..100)
        .map(|user| direct_invoke(&format!("user{user:03}"), "2024-02-01T00:00:00Z"))
        .collect();
    write_ndjson(&input, &events);

    let whole = directory.join("whole.ndjson");
    assert!(run(
        &input,
        &directory.join("whole-state"),
        &whole,
        u64::MAX,
        false
    ));

    let alerts = directory.join("alerts.ndjson");
    let state = directory.join("state");
    assert!(!run(&input, &state, &alerts, 40, true));
    assert!(directory.join("state.checkpoint").exists());
    assert!(run(&input, &state, &alerts, u64::MAX, false));
    assert!(ended(&directory.join("state.checkpoint")));
    // Run again (as after a kill while it exited): nothing to do, the alerts stay.
    assert!(run(&input, &state, &alerts, u64::MAX, false));
    let expected = std::fs::read_to_string(&whole).expect("whole");
    assert_eq!(expected.lines().count(), 100);
    assert_eq!(std::fs::read_to_string(&alerts).expect("alerts"), expected);
}
