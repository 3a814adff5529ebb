//! The `newterms` binary end to end.

use std::io::Write;

use serde_json::{Value, json};

use crate::support::{direct_invoke, event_ids, newterms, scratch, write_ndjson};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/lambda-invocations.ndjson"
);

/// The example's alerts under the default profile, by event id: the real direct call from the
/// SumoLogic documentation, deploy-bot's first call and its return after 18 quiet days, the root
/// user, the ops-admin role (one alert for two sessions), and an ECS document's new principal.
const EXAMPLE_ALERTS: [&str; 6] = [
    "277a6881-66f4-4f3e-ade5-ba76255b7d93",
    "0b7e1a52-0001-4c3e-9d1a-000000000001",
    "0b7e1a52-0003-4c3e-9d1a-000000000003",
    "0b7e1a52-0004-4c3e-9d1a-000000000004",
    "0b7e1a52-0008-4c3e-9d1a-000000000008",
    "0b7e1a52-0009-4c3e-9d1a-000000000009",
];

fn path(path: &std::path::Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn scans_the_bundled_example() {
    let run = newterms(&["scan", EXAMPLE], b"");
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(event_ids(&run.alerts), EXAMPLE_ALERTS);
    assert!(
        run.stderr
            .contains("12 events read, 9 matched, 0 excepted, 6 alerts, 0 errors"),
        "{}",
        run.stderr
    );
}

#[test]
fn ocsf_findings_carry_the_same_alerts() {
    let ecs = newterms(&["scan", EXAMPLE], b"");
    let ocsf = newterms(&["scan", "--format", "ocsf", EXAMPLE], b"");
    assert!(ocsf.status.success(), "{}", ocsf.stderr);
    assert_eq!(ocsf.alerts.len(), ecs.alerts.len());
    for (finding, alert) in ocsf.alerts.iter().zip(&ecs.alerts) {
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(
            finding["finding_info"]["uid"],
            alert["kibana"]["alert"]["uuid"]
        );
        assert_eq!(finding["metadata"]["original_uid"], alert["event"]["id"]);
        assert_eq!(
            finding["evidences"][0]["actor"]["user"]["uid"],
            alert["aws"]["cloudtrail"]["user_identity"]["arn"]
        );
        assert_eq!(finding["unmapped"]["ecs"], *alert);
    }
}

#[test]
fn no_progress_line_when_stderr_is_not_a_terminal() {
    let run = newterms(&["scan", EXAMPLE], b"");
    assert!(!run.stderr.contains('\r'), "{:?}", run.stderr);
}

#[test]
fn a_progress_line_with_rate_on_a_terminal() {
    let directory = scratch("progress");
    let input = directory.join("long.ndjson");
    let example = std::fs::read_to_string(EXAMPLE).expect("example");
    std::fs::write(&input, example.repeat(8_000)).expect("write");
    let command = format!(
        "{} scan {} > /dev/null",
        env!("CARGO_BIN_EXE_newterms"),
        input.display()
    );
    // `script` gives the command a terminal and records what it drew on it.
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(screen.contains("\r\x1b[Knewterms: "), "{screen:?}");
    assert!(screen.contains("events/s"), "{screen:?}");
    assert!(screen.contains("96000 events read"), "{screen:?}");
}

#[test]
fn elastic_profile_misses_root_and_uses_seven_days() {
    let run = newterms(&["scan", "--profile", "elastic", EXAMPLE], b"");
    assert!(run.status.success(), "{}", run.stderr);
    // No root alert (no user name); deploy-bot is quiet 18 days, past 7 either way.
    let mut expected = EXAMPLE_ALERTS.to_vec();
    expected.retain(|id| *id != "0b7e1a52-0003-4c3e-9d1a-000000000003");
    assert_eq!(event_ids(&run.alerts), expected);
}

#[test]
fn reads_stdin_when_given_dash_or_nothing() {
    let example = std::fs::read(EXAMPLE).expect("example");
    for args in [vec!["scan"], vec!["scan", "-"]] {
        let run = newterms(&args, &example);
        assert!(run.status.success(), "{}", run.stderr);
        assert_eq!(event_ids(&run.alerts), EXAMPLE_ALERTS, "{args:?}");
    }
}

#[test]
fn state_split_across_runs_equals_one_run() {
    let example = std::fs::read_to_string(EXAMPLE).expect("example");
    let lines: Vec<&str> = example.lines().collect();
    let directory = scratch("state-split");
    for split in [0, 3, 6, 9, lines.len()] {
        let state = directory.join(format!("state-{split}.bin"));
        let first = directory.join(format!("first-{split}.ndjson"));
        let second = directory.join(format!("second-{split}.ndjson"));
        std::fs::write(&first, lines[..split].join("\n")).expect("write");
        std::fs::write(&second, lines[split..].join("\n")).expect("write");
        let one = newterms(&["scan", "--state", path(&state), path(&first)], b"");
        let two = newterms(&["scan", "--state", path(&state), path(&second)], b"");
        assert!(
            one.status.success() && two.status.success(),
            "{}{}",
            one.stderr,
            two.stderr
        );
        let mut alerts = one.alerts;
        alerts.extend(two.alerts);
        assert_eq!(event_ids(&alerts), EXAMPLE_ALERTS, "split at line {split}");
    }
}

#[test]
fn learn_mode_warms_up_without_alerts() {
    let directory = scratch("learn");
    let state = directory.join("state.bin");
    let history = directory.join("history.ndjson");
    write_ndjson(&history, &[direct_invoke("alice", "2024-04-20T00:00:00Z")]);
    let learned = newterms(
        &["scan", "--learn", "--state", path(&state), path(&history)],
        b"",
    );
    assert!(learned.status.success(), "{}", learned.stderr);
    assert!(learned.alerts.is_empty());

    let live_input = directory.join("live.ndjson");
    write_ndjson(
        &live_input,
        &[
            direct_invoke("alice", "2024-04-25T00:00:00Z"),
            direct_invoke("bob", "2024-04-25T00:00:00Z"),
        ],
    );
    let live = newterms(&["scan", "--state", path(&state), path(&live_input)], b"");
    assert_eq!(event_ids(&live.alerts), ["bob@2024-04-25T00:00:00Z"]);
}

#[test]
fn exclusions_from_flags_and_configuration() {
    let directory = scratch("exclusions");
    let flagged = newterms(
        &[
            "scan",
            "--exclude-arn",
            "arn:aws:iam::111122223333:user/deploy-*",
            EXAMPLE,
        ],
        b"",
    );
    assert!(flagged.status.success(), "{}", flagged.stderr);
    assert_eq!(flagged.alerts.len(), 4, "both deploy-bot alerts are gone");

    let config = directory.join("rule.toml");
    std::fs::write(
        &config,
        r#"
profile = "elastic"
window = "30d"
capacity = 1000
exclude_arns = ["arn:aws:iam::111122223333:root"]

[[exceptions]]
field = "user.name"
values = ["ops-*"]
"#,
    )
    .expect("write config");
    let configured = newterms(&["scan", "--config", path(&config), EXAMPLE], b"");
    assert!(configured.status.success(), "{}", configured.stderr);
    // Elastic profile, 30-day window: deploy-bot's return is known; ops-admin excepted.
    assert_eq!(
        event_ids(&configured.alerts),
        [
            "277a6881-66f4-4f3e-ade5-ba76255b7d93",
            "0b7e1a52-0001-4c3e-9d1a-000000000001",
            "0b7e1a52-0009-4c3e-9d1a-000000000009",
        ]
    );
    // The command line wins over the file.
    let overridden = newterms(
        &["scan", "--config", path(&config), "--window", "1d", EXAMPLE],
        b"",
    );
    // 1-day window: deploy-bot's second call, 24 h 7 s after its first, is new again.
    assert_eq!(overridden.alerts.len(), 5);
}

#[test]
fn bad_configuration_names_the_file_and_line() {
    let directory = scratch("bad-config");
    let config = directory.join("rule.toml");
    std::fs::write(&config, "profile = \"elastic\"\nwindoww = \"7d\"\n").expect("write");
    let run = newterms(&["scan", "--config", path(&config), EXAMPLE], b"");
    assert!(!run.status.success());
    assert!(run.stderr.contains("rule.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
    assert!(run.stderr.contains("windoww"), "{}", run.stderr);

    std::fs::write(&config, "profile = \"strict\"\n").expect("write");
    let run = newterms(&["scan", "--config", path(&config), EXAMPLE], b"");
    assert!(!run.status.success());
    assert!(run.stderr.contains("unknown profile"), "{}", run.stderr);
    assert!(run.stderr.contains("`profile`"), "{}", run.stderr);

    std::fs::write(&config, "capacity = 0\n").expect("write");
    let run = newterms(&["scan", "--config", path(&config), EXAMPLE], b"");
    assert!(!run.status.success());
    assert!(run.stderr.contains("`capacity`"), "{}", run.stderr);
}

#[test]
fn malformed_lines_are_reported_with_file_and_line_and_skipped() {
    let directory = scratch("malformed");
    let input = directory.join("mixed.ndjson");
    let mut file = std::fs::File::create(&input).expect("create");
    writeln!(file, "{}", direct_invoke("alice", "2024-04-01T00:00:00Z")).expect("write");
    writeln!(file, "{{\"eventName\": \"Invoke\", ").expect("write");
    file.write_all(b"{\"eventName\": \"\xff\"}\n")
        .expect("write");
    writeln!(file, "[1, 2]").expect("write");
    let no_time = crate::support::without(direct_invoke("carol", "x"), "/eventTime");
    writeln!(file, "{no_time}").expect("write");
    writeln!(file, "{}", direct_invoke("bob", "2024-04-01T00:00:00Z")).expect("write");
    drop(file);

    let run = newterms(&["scan", path(&input)], b"");
    assert!(
        run.status.success(),
        "bad lines are not a failed run: {}",
        run.stderr
    );
    assert_eq!(
        event_ids(&run.alerts),
        ["alice@2024-04-01T00:00:00Z", "bob@2024-04-01T00:00:00Z"]
    );
    let name = path(&input);
    for expected in [
        format!("{name}:2: malformed JSON"),
        format!("{name}:3: not UTF-8"),
        format!("{name}:4: not a JSON object"),
        format!("{name}:5: matching event without a time"),
    ] {
        assert!(
            run.stderr.contains(&expected),
            "missing {expected:?} in {}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("4 errors (1 input, 3 event)"),
        "{}",
        run.stderr
    );
}

#[test]
fn unreadable_inputs_and_bad_state_fail_without_touching_anything() {
    let directory = scratch("failures");
    let missing = directory.join("missing.ndjson");
    let run = newterms(&["scan", path(&missing)], b"");
    assert!(!run.status.success());
    assert!(run.stderr.contains("missing.ndjson"), "{}", run.stderr);

    let state = directory.join("state.bin");
    std::fs::write(&state, b"not a snapshot").expect("write");
    let run = newterms(&["scan", "--state", path(&state), EXAMPLE], b"");
    assert!(!run.status.success());
    assert!(
        run.alerts.is_empty(),
        "nothing is processed with a state it cannot accept"
    );
    assert!(run.stderr.contains("state.bin"), "{}", run.stderr);
    assert!(run.stderr.contains("magic"), "{}", run.stderr);
    assert_eq!(std::fs::read(&state).expect("read"), b"not a snapshot");

    // A state of another profile is refused, not silently reused.
    let good = directory.join("default.bin");
    assert!(
        newterms(&["scan", "--state", path(&good), EXAMPLE], b"")
            .status
            .success()
    );
    let before = std::fs::read(&good).expect("read");
    let run = newterms(
        &[
            "scan",
            "--profile",
            "elastic",
            "--state",
            path(&good),
            EXAMPLE,
        ],
        b"",
    );
    assert!(!run.status.success());
    assert!(run.stderr.contains("does not fit"), "{}", run.stderr);
    assert_eq!(std::fs::read(&good).expect("read"), before);

    let usage = newterms(&["scan", "--profile", "strict"], b"");
    assert_eq!(usage.status.code(), Some(2), "{}", usage.stderr);
}

#[test]
fn reads_delivery_files_compressed_or_not() {
    let directory = scratch("delivery");
    let records: Vec<Value> = vec![
        direct_invoke("alice", "2024-04-01T00:00:00Z"),
        direct_invoke("bob", "2024-04-01T00:00:00Z"),
    ];
    let document = json!({"Records": records});
    let pretty = directory.join("pretty.json");
    std::fs::write(
        &pretty,
        serde_json::to_string_pretty(&document).expect("json"),
    )
    .expect("write");
    let gzipped = directory.join("compact.json.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(
            json!({"Records": [direct_invoke("carol", "2024-04-01T00:00:00Z")]})
                .to_string()
                .as_bytes(),
        )
        .expect("gzip");
    std::fs::write(&gzipped, encoder.finish().expect("gzip")).expect("write");

    let run = newterms(&["scan", path(&pretty), path(&gzipped)], b"");
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        event_ids(&run.alerts),
        [
            "alice@2024-04-01T00:00:00Z",
            "bob@2024-04-01T00:00:00Z",
            "carol@2024-04-01T00:00:00Z"
        ]
    );
}

#[test]
fn info_lists_metadata_imports_and_exports() {
    let run = newterms(&["info"], b"");
    assert!(run.status.success(), "{}", run.stderr);
    for expected in [
        "AWS Lambda Function Invoked by an Unusual Principal",
        "07cd35a6-c267-4394-a782-6a9428aea9d3",
        "TA0002",
        "T1648",
        "profile:         default",
        "window:          1209600000 ms",
        "cloud.account.id + user.name",
        "imports:         none",
        "newterms:rule/detector@0.4.0",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            run.stdout
        );
    }
}

#[test]
fn streams_alerts_as_events_arrive_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let directory = scratch("streaming");
    let state = directory.join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_newterms"))
        .args(["scan", "--state", path(&state)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut alerts = BufReader::new(child.stdout.take().expect("stdout"));
    // One event at a time on a stream that stays open: each alert comes out before the next event.
    for user in ["alice", "bob"] {
        writeln!(stdin, "{}", direct_invoke(user, "2024-04-01T00:00:00Z")).expect("write");
        stdin.flush().expect("flush");
        let mut line = String::new();
        alerts
            .read_line(&mut line)
            .expect("an alert while the stream is open");
        let alert: Value = serde_json::from_str(&line).expect("alert");
        assert_eq!(alert["user"]["name"], user);
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("wait");
    drop(stdin);
    assert!(status.success());
    // The stream ended by SIGTERM is a finished run: its history is saved, nothing is pending.
    assert!(state.exists());
    assert!(!directory.join("state.checkpoint").exists());
    let again = newterms(
        &["scan", "--state", path(&state)],
        direct_invoke("alice", "2024-04-02T00:00:00Z")
            .to_string()
            .as_bytes(),
    );
    assert!(again.alerts.is_empty());
}

/// Gzip is inflated on a thread of its own in blocks of 256 KiB: a file many blocks long, from a
/// file and from standard input, raises exactly the alerts of the plain file, in the same order.
#[test]
fn a_gzip_input_many_blocks_long_raises_the_alerts_of_the_plain_one_in_order() {
    let directory = scratch("gzip-blocks");
    // ~4 MB of events: 400 users, each seen every 3 days (within the window: one alert each).
    let events: Vec<Value> = (0..4_000)
        .map(|index| {
            let user = format!("user-{}", index % 400);
            let day = 1 + index / 400 * 3;
            direct_invoke(&user, &format!("2024-04-{day:02}T00:00:{:02}Z", index % 60))
        })
        .collect();
    let plain = directory.join("events.ndjson");
    write_ndjson(&plain, &events);
    let text = std::fs::read(&plain).expect("read");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&text).expect("gzip");
    let compressed = encoder.finish().expect("gzip");
    let gzipped = directory.join("events.ndjson.gz");
    std::fs::write(&gzipped, &compressed).expect("write");

    let from_plain = newterms(&["scan", path(&plain)], b"");
    assert!(from_plain.status.success(), "{}", from_plain.stderr);
    assert_eq!(from_plain.alerts.len(), 400);
    for run in [
        newterms(&["scan", path(&gzipped)], b""),
        newterms(&["scan"], &compressed),
    ] {
        assert!(run.status.success(), "{}", run.stderr);
        assert_eq!(run.stdout, from_plain.stdout);
    }
}
