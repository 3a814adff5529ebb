//! The scan and its reader thread: the end of the input is said, never guessed, so a reader that
//! dies is an error and not a finished scan.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use newterms::RuleConfig;
use newterms::input::{Input, InputReader, Position, Stream};
use newterms::scan::{
    DeadLetter, Diagnostic, ScanEnd, ScanError, ScanOptions, ScanSummary, Scanner,
};

use crate::support::{component, direct_invoke};

/// A sink that keeps what it is given, and asks the scan to stop at an alert when it has `stop`.
#[derive(Default)]
struct Kept {
    alerts: usize,
    checkpoints: Vec<Position>,
    stop: Option<Arc<AtomicBool>>,
}

impl newterms::scan::Sink for Kept {
    fn alert(&mut self, _: &str) -> io::Result<()> {
        self.alerts += 1;
        if let Some(stop) = &self.stop {
            stop.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
    fn flush(&mut self, _: &ScanSummary) -> io::Result<()> {
        Ok(())
    }
    fn diagnostic(&mut self, _: Diagnostic) {}
    fn dead_letter(&mut self, _: &DeadLetter<'_>) -> io::Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self, position: Position, _: &[u8]) -> io::Result<()> {
        self.checkpoints.push(position);
        Ok(())
    }
}

/// Gives `text`, then panics (a bug in a decoder, say).
struct PanicsAfter(io::Cursor<Vec<u8>>);

impl Read for PanicsAfter {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buffer)? {
            0 => panic!("decoder bug"),
            read => Ok(read),
        }
    }
}

/// Gives `text`, then waits for its sender (a stream with nothing more to say yet).
struct WaitsAfter(io::Cursor<Vec<u8>>, mpsc::Receiver<()>);

impl Read for WaitsAfter {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buffer)? {
            0 => {
                let _ = self.1.recv();
                Ok(0)
            }
            read => Ok(read),
        }
    }
}

fn events(users: &[&str]) -> Vec<u8> {
    let mut text = Vec::new();
    for user in users {
        text.extend_from_slice(
            direct_invoke(user, "2024-02-01T00:00:00Z")
                .to_string()
                .as_bytes(),
        );
        text.push(b'\n');
    }
    text
}

/// One thread, and extracting threads (which hand back what they hold before the end is told).
fn thread_counts() -> impl Iterator<Item = ScanOptions> {
    [1, 3].into_iter().map(|threads| ScanOptions {
        threads,
        ..ScanOptions::default()
    })
}

#[test]
fn a_reader_that_panics_is_an_error_not_the_end() {
    let mut delivered = Vec::new();
    for options in thread_counts() {
        let mut scanner = Scanner::new(component(), &RuleConfig::default(), None).expect("scanner");
        let dying = Stream::new(
            "dying",
            PanicsAfter(io::Cursor::new(events(&["alice", "bob"]))),
        );
        let after = Stream::new("after", io::Cursor::new(events(&["carol"])));
        let reader = InputReader::new([Input::Stream(dying), Input::Stream(after)]);
        let mut sink = Kept::default();
        match scanner.run(reader, &options, &mut sink) {
            Err(ScanError::Reader(why)) => assert!(why.contains("decoder bug"), "{why}"),
            other => panic!("expected the reader's death, got {other:?}"),
        }
        delivered.push(sink.alerts);
    }
    // What was read before the reader died is processed with threads as without.
    assert!(
        delivered.windows(2).all(|pair| pair[0] == pair[1]),
        "{delivered:?}"
    );
}

#[test]
fn a_reader_that_ends_is_a_finished_scan() {
    for options in thread_counts() {
        let mut scanner = Scanner::new(component(), &RuleConfig::default(), None).expect("scanner");
        let first = Stream::new("first", io::Cursor::new(events(&["alice", "bob"])));
        let second = Stream::new("second", io::Cursor::new(events(&["carol"])));
        let reader = InputReader::new([Input::Stream(first), Input::Stream(second)]);
        let mut sink = Kept::default();
        let end = scanner.run(reader, &options, &mut sink);
        assert!(matches!(end, Ok(ScanEnd::Finished)), "{end:?}");
        assert_eq!(scanner.summary().events, 3);
        assert_eq!(sink.alerts, 3, "{} threads", options.threads);
    }
}

/// A stop ends the scan even while its reader waits on a stream that says nothing more: neither the
/// scan nor its extracting threads wait for the reader.
#[test]
fn a_stop_ends_a_scan_whose_reader_is_waiting() {
    for options in thread_counts() {
        let threads = options.threads;
        let (still_open, waiting) = mpsc::channel::<()>();
        let (ended, end) = mpsc::channel();
        std::thread::spawn(move || {
            let mut scanner =
                Scanner::new(component(), &RuleConfig::default(), None).expect("scanner");
            let stream = Stream::new(
                "waiting",
                WaitsAfter(io::Cursor::new(events(&["alice"])), waiting),
            );
            let stop = Arc::new(AtomicBool::new(false));
            let options = ScanOptions {
                stop: Some(Arc::clone(&stop)),
                ..options
            };
            let mut sink = Kept {
                stop: Some(stop),
                ..Kept::default()
            };
            let scanned = scanner.run(
                InputReader::new([Input::Stream(stream)]),
                &options,
                &mut sink,
            );
            let _ = ended.send((scanned.map_err(|error| error.to_string()), sink.alerts));
        });
        let (scanned, alerts) = end
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{threads} threads: the scan did not stop"));
        assert!(
            matches!(scanned, Ok(ScanEnd::Stopped(Some(_)))),
            "{threads} threads: {scanned:?}"
        );
        assert_eq!(alerts, 1, "{threads} threads");
        drop(still_open);
    }
}
