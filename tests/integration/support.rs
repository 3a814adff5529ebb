//! Shared helpers: a compiled component, event builders, fixtures, and the CLI.

#![allow(dead_code)] // each test module uses its own share of these

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use newterms::{Limits, RuleComponent, RuleConfig, RuleInstance, Sandbox};
use serde_json::{Value, json};

/// The embedded component, compiled once for the whole test binary.
pub fn component() -> &'static RuleComponent {
    static COMPONENT: OnceLock<RuleComponent> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        let sandbox = Sandbox::new(Limits::default()).expect("engine");
        RuleComponent::embedded(&sandbox).expect("embedded component loads")
    })
}

/// A fresh instance of the embedded rule.
pub fn rule(config: &RuleConfig) -> RuleInstance {
    component().instantiate(config).expect("instantiate")
}

/// Alerts of one event, parsed.
pub fn alerts(rule: &mut RuleInstance, event: &Value) -> Vec<Value> {
    rule.process_event(&event.to_string())
        .expect("no trap")
        .expect("event accepted")
        .iter()
        .map(|alert| serde_json::from_str(alert).expect("alert is JSON"))
        .collect()
}

/// The new-terms values of an alert.
pub fn terms(alert: &Value) -> Value {
    alert["kibana"]["alert"]["new_terms"].clone()
}

/// A direct `Invoke` by an IAM user in account 123456789012, raw CloudTrail.
pub fn direct_invoke(user: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": format!("arn:aws:iam::123456789012:user/{user}"),
            "accountId": "123456789012",
            "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "userName": user
        },
        "eventTime": time,
        "eventSource": "lambda.amazonaws.com",
        "eventName": "Invoke",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.20",
        "userAgent": "Boto3/1.34.0",
        "requestParameters": {"functionName": "payments-export"},
        "responseElements": null,
        "requestID": "req-1",
        "eventID": format!("{user}@{time}"),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": false,
        "recipientAccountId": "123456789012",
        "eventCategory": "Data"
    })
}

/// Sets a value by JSON pointer, creating nothing: the parent must exist.
pub fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    event
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent object")
        .insert(key.to_owned(), value);
    event
}

/// The events on which the hostile component (tests/hostile-guest) traps, loops, hoards memory
/// and answers garbage, in that order: its marker in the user agent.
pub const HOSTILE_MARKERS: [&str; 4] = [
    "NEWTERMS_TRAP",
    "NEWTERMS_LOOP",
    "NEWTERMS_ALLOC",
    "NEWTERMS_MALFORMED",
];

/// A direct invoke by `user` carrying a hostile marker.
pub fn marked(user: &str, marker: &str) -> Value {
    with(
        direct_invoke(user, "2024-02-01T00:00:00Z"),
        "/userAgent",
        json!(marker),
    )
}

/// 600 direct invokes by 250 users, with each of [`HOSTILE_MARKERS`] once between them (by
/// `poisoned`), then a later invoke by `poisoned`: 251 alerts if the marked events change nothing.
pub fn hostile_stream() -> Vec<Value> {
    let mut stream = Vec::new();
    for index in 0..600 {
        stream.push(direct_invoke(
            &format!("user-{}", index % 250),
            &format!("2024-02-01T00:{:02}:{:02}Z", index / 60, index % 60),
        ));
        if index % 150 == 70 {
            stream.push(marked("poisoned", HOSTILE_MARKERS[index / 150]));
        }
    }
    stream.push(direct_invoke("poisoned", "2024-02-02T00:00:00Z"));
    stream
}

/// Removes a value by JSON pointer.
pub fn without(mut event: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    if let Some(parent) = event.pointer_mut(parent).and_then(Value::as_object_mut) {
        parent.remove(key);
    }
    event
}

/// A file under `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(relative)
}

/// A scratch directory for one test, under one per test binary.
pub fn scratch(name: &str) -> Scratch {
    let directory = std::env::temp_dir()
        .join(format!("newterms-it-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("scratch directory");
    Scratch(directory)
}

/// A test's scratch directory. It goes when the test passes, since a run of the suite writes half
/// a gigabyte there and CI machines share their disk; a failing test's stays, to be looked at.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
        // The binary's own directory goes with its last test; while others still use it, this fails.
        if let Some(binary_directory) = self.0.parent() {
            let _ = std::fs::remove_dir(binary_directory);
        }
    }
}

/// Writes events as NDJSON.
pub fn write_ndjson(path: &Path, events: &[Value]) {
    let mut text = String::new();
    for event in events {
        text.push_str(&event.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write NDJSON");
}

/// What a run of the CLI printed.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub alerts: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `newterms ARGS` with `stdin` as standard input.
pub fn newterms(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_newterms"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn newterms");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("newterms runs");
    writer.join().expect("stdin writer");
    let stdout = String::from_utf8(stdout).expect("stdout is UTF-8");
    let alerts = if args.first() == Some(&"scan") {
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("each stdout line is a JSON alert"))
            .collect()
    } else {
        Vec::new()
    };
    Run {
        status,
        alerts,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The `event.id` of each alert, in order.
pub fn event_ids(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|alert| alert["event"]["id"].as_str().unwrap_or("<none>").to_owned())
        .collect()
}

/// Whether the checkpoint at `path` says its scan ended (a scan over files leaves one), or there is
/// none: either way, nothing is left to resume.
pub fn ended(path: &Path) -> bool {
    match std::fs::read(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
        Err(error) => panic!("{}: {error}", path.display()),
        Ok(bytes) => newterms::checkpoint::Checkpoint::decode(&bytes)
            .unwrap_or_else(|why| panic!("{}: {why}", path.display()))
            .completed
            .is_some(),
    }
}
