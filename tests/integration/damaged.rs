//! A damaged input (a truncated gzip file): every event that can be read is processed, the state
//! stays consistent, and the scan exits non-zero so that a pipeline notices.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::support::{direct_invoke, event_ids, newterms, scratch};

/// One direct Invoke by each of `count` users (each a new term: one alert each).
fn invokes(count: usize) -> Vec<Value> {
    (0..count)
        .map(|user| direct_invoke(&format!("user{user:05}"), "2024-02-01T00:00:00Z"))
        .collect()
}

/// `text` gzip-compressed, then cut in the middle of its compressed bytes.
fn truncated_gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text).expect("gzip");
    let mut compressed = encoder.finish().expect("gzip");
    compressed.truncate(compressed.len() / 2);
    compressed
}

fn path(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn a_truncated_gzip_delivery_file_keeps_the_records_before_the_cut_and_exits_1() {
    let directory = scratch("truncated-delivery");
    let events = invokes(2_000);
    let file = directory.join("delivery.json.gz");
    let document = serde_json::to_vec_pretty(&json!({"Records": events})).expect("JSON");
    std::fs::write(&file, truncated_gzip(&document)).expect("write");

    let run = newterms(&["scan", path(&file)], b"");
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let read = run.alerts.len();
    assert!(read > 0 && read < events.len(), "{read} records read");
    let expected: Vec<String> = events[..read]
        .iter()
        .map(|event| event["eventID"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(event_ids(&run.alerts), expected);
    // The message says where reading stopped: the next record.
    assert!(
        run.stderr
            .contains(&format!("(record {}): read error", read + 1)),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("{read} events read")),
        "{}",
        run.stderr
    );
}

#[test]
fn with_state_a_truncated_input_saves_what_was_read_and_the_rest_can_follow() {
    let directory = scratch("truncated-state");
    let events = invokes(3_000);
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let file = directory.join("events.ndjson.gz");
    std::fs::write(&file, truncated_gzip((lines.join("\n") + "\n").as_bytes())).expect("write");
    let state = directory.join("state");

    let first = newterms(&["scan", "--state", path(&state), path(&file)], b"");
    assert_eq!(first.status.code(), Some(1), "{}", first.stderr);
    // `FILE:LINE: read error`: the lines before LINE were processed.
    let line: usize = first
        .stderr
        .split_once(&format!("{}:", file.display()))
        .and_then(|(_, rest)| rest.split_once(": read error"))
        .and_then(|(line, _)| line.parse().ok())
        .unwrap_or_else(|| panic!("no line in {}", first.stderr));
    assert!(line > 1 && line <= events.len(), "line {line}");
    assert_eq!(first.alerts.len(), line - 1);
    assert!(state.exists(), "the state holds what was processed");
    assert!(!directory.join("state.checkpoint").exists());

    // The rest, fed later, continues the same history: together, one run of the whole input.
    let rest = lines[line - 1..].join("\n") + "\n";
    let second = newterms(&["scan", "--state", path(&state), "-"], rest.as_bytes());
    assert!(second.status.success(), "{}", second.stderr);
    let whole = newterms(&["scan", "-"], (lines.join("\n") + "\n").as_bytes());
    assert!(whole.status.success(), "{}", whole.stderr);
    let mut both = event_ids(&first.alerts);
    both.extend(event_ids(&second.alerts));
    assert_eq!(both, event_ids(&whole.alerts));
    assert_eq!(both.len(), events.len());
}
