//! `newterms scan --threads N`: several instances extract batches at once and one decides them in
//! order, so every output is that of one thread: the same alerts, byte for byte and in the same
//! order, the same diagnostics, the same dead letters, and the same state after kills and resumes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::Rng;
use crate::crash::{Trials, scan_args, spawn, stream};
use crate::support::{
    HOSTILE_MARKERS, Run, direct_invoke, fixture, hostile_stream, newterms, scratch, with,
    write_ndjson,
};

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A run's stderr without the figures that vary from run to run (time and rate).
fn steady(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| match (line.find(" in "), line.find(" events/s)")) {
            (Some(start), Some(end)) if line.contains("events read") => {
                format!("{}{}", &line[..start], &line[end..])
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Scans `inputs` with `args` at 1, 2 and 3 threads and requires every output of the threaded runs
/// to be the one-thread run's: stdout byte for byte, stderr but for timings. Returns the alerts.
fn same_at_every_thread_count(args: &[&str], inputs: &[PathBuf]) -> Vec<Value> {
    let one = same_run_at_every_thread_count(args, inputs);
    assert!(one.status.success(), "{}", one.stderr);
    one.alerts
}

/// [`same_at_every_thread_count`] for runs that may fail (an input lost, say): the exit code is
/// compared too. Returns the one-thread run.
fn same_run_at_every_thread_count(args: &[&str], inputs: &[PathBuf]) -> Run {
    let run = |threads: &str| {
        let mut all = vec!["scan", "--threads", threads];
        all.extend_from_slice(args);
        all.extend(inputs.iter().map(|path| text(path)));
        newterms(&all, b"")
    };
    let one = run("1");
    for threads in ["2", "3"] {
        let many = run(threads);
        assert_eq!(many.status.code(), one.status.code());
        assert!(
            many.stdout == one.stdout,
            "--threads {threads} {args:?}: alerts differ from one thread's"
        );
        assert_eq!(
            steady(&many.stderr),
            steady(&one.stderr),
            "--threads {threads}"
        );
    }
    one
}

/// `events` as a CloudTrail delivery document, gzip-compressed as S3 stores it.
fn gzip_delivery(events: &[Value]) -> Vec<u8> {
    gzip(json!({ "Records": events }).to_string().as_bytes())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// Direct invocations by a few hundred principals, `count` of them from `first`, a minute apart.
fn invocations(first: usize, count: usize) -> Vec<Value> {
    const MARCH_1_2024: i64 = 1_709_251_200_000;
    (first..first + count)
        .map(|index| {
            let time = newterms_guest::time::format_iso8601(MARCH_1_2024 + index as i64 * 60_000);
            direct_invoke(&format!("user-{}", index * 7 % 300), &time)
        })
        .collect()
}

/// With threads, a file that cannot be read in ranges (gzip, a delivery document) is read whole
/// by one extracting thread while the next go to the others, the last input by the reader: the
/// outputs are one thread's, with every kind of file and fault among them, each file in many
/// batches.
#[test]
fn files_read_whole_by_threads_give_what_one_thread_gives() {
    let directory = scratch("threads-whole-files");
    let file = |name: &str, bytes: &[u8]| {
        let path = directory.join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let ndjson = |events: &[Value]| {
        let lines: Vec<String> = events.iter().map(Value::to_string).collect();
        lines.join("\n") + "\n"
    };
    let truncated = gzip_delivery(&invocations(400, 200));
    // Two commas between its first and second records.
    let broken_delivery = json!({ "Records": invocations(800, 50) })
        .to_string()
        .replacen("},{", "},,{", 1);
    let pretty =
        serde_json::to_string_pretty(&json!({ "Records": invocations(900, 120) })).expect("JSON");
    let mut with_bad_line = ndjson(&invocations(1_100, 60));
    with_bad_line.push_str("{\"eventSource\": \"lambda.amazonaws.com\",\n");
    with_bad_line.push_str(&ndjson(&invocations(1_160, 60)));
    let inputs = vec![
        file("01.json.gz", &gzip_delivery(&invocations(0, 300))),
        file("02.ndjson.gz", &gzip(with_bad_line.as_bytes())),
        file("04.json.gz", &truncated[..truncated.len() / 2]),
        file("05.json", pretty.as_bytes()),
        file("06.json.gz", &gzip_delivery(&[])),
        file("07.json.gz", &gzip(broken_delivery.as_bytes())),
        file("08.ndjson", ndjson(&invocations(1_300, 90)).as_bytes()),
        file("09.json.gz", b""),
        directory.to_path_buf(),
        file("10.json.gz", &gzip_delivery(&invocations(1_400, 250))),
        file("11.json.gz", &gzip_delivery(&invocations(1_650, 250))),
    ];
    let one = same_run_at_every_thread_count(&["--batch-size", "16"], &inputs);
    // The truncated gzip loses the rest of its file: the scan says so in its exit code.
    assert_eq!(one.status.code(), Some(1), "{}", one.stderr);
    for said in [
        "04.json.gz",
        "malformed delivery document",
        "02.ndjson.gz:61",
        "Is a directory",
    ] {
        assert!(one.stderr.contains(said), "{said}: {}", one.stderr);
    }
    assert!(one.alerts.len() >= 300, "{} alerts", one.alerts.len());
}

/// Killed at random moments and run again until it finishes, a scan with 3 threads over many
/// gzip delivery files (read whole by the extracting threads) leaves the alert file and the state
/// of one uninterrupted run with one thread.
#[test]
fn killed_reading_many_gzip_files_with_threads_it_ends_as_one_uninterrupted_thread() {
    let directory = scratch("threads-crash-files");
    let inputs: Vec<PathBuf> = (0..8)
        .map(|part| {
            let path = directory.join(format!("part-{part}.json.gz"));
            std::fs::write(&path, gzip_delivery(&invocations(part * 2_000, 2_000))).expect("write");
            path
        })
        .collect();
    killed_with_threads_ends_as_one_uninterrupted_thread(&directory, &inputs, 5, 1_234);
}

/// Scans `inputs` killed at random moments with 3 threads, in `trials` trials, and requires each
/// to end with the alert file and the state of one uninterrupted run with one thread (as an
/// uninterrupted run with 3 threads does), with as many kills as trials at least and three of them
/// landing after a checkpoint.
fn killed_with_threads_ends_as_one_uninterrupted_thread(
    directory: &Path,
    inputs: &[PathBuf],
    trials: usize,
    seed: u64,
) {
    let (reference_state, reference_alerts) =
        (directory.join("ref.state"), directory.join("ref.ndjson"));
    let mut reference_args = scan_args(&reference_state, &reference_alerts, inputs);
    reference_args.extend(["--threads", "1"]);
    let reference = newterms(&reference_args, b"");
    assert!(reference.status.success(), "{}", reference.stderr);
    let expected_alerts = std::fs::read(&reference_alerts).expect("reference alerts");
    let expected_state = std::fs::read(&reference_state).expect("reference state");
    // Kills land within the time of an uninterrupted run with the trials' threads: with one
    // thread's time, a faster threaded run would often finish before its kill.
    let (timed_state, timed_alerts) = (
        directory.join("timed.state"),
        directory.join("timed.ndjson"),
    );
    let mut timed_args = scan_args(&timed_state, &timed_alerts, inputs);
    timed_args.extend(["--threads", "3"]);
    let started = std::time::Instant::now();
    let timed = newterms(&timed_args, b"");
    let run_ms = started.elapsed().as_millis() as u64 + 1;
    assert!(timed.status.success(), "{}", timed.stderr);
    assert!(
        std::fs::read(&timed_alerts).expect("alerts") == expected_alerts,
        "an uninterrupted run with 3 threads: alert file differs"
    );

    let trials_of = Trials {
        directory,
        inputs,
        extra: &["--threads", "3"],
        run_ms,
        expected_alerts: &expected_alerts,
        expected_state: &expected_state,
    };
    let (kills, resumed) = trials_of.run(trials, seed, |_| {});
    eprintln!(
        "{}: {kills} kills, {resumed} resumed runs",
        directory.display()
    );
    assert!(kills >= trials, "the harness killed too rarely ({kills})");
    assert!(
        resumed >= 3,
        "too few kills landed after a checkpoint ({resumed})"
    );
}

/// A stream that exercises every branch of the rule: first sightings and principals coming back
/// after the window, out-of-order times, events triggered by a service, ECS documents with
/// array-valued term fields, escaped spellings (the full path), refusals of every kind, noise.
fn generated_stream(directory: &Path) -> PathBuf {
    const MARCH_1_2024: i64 = 1_709_251_200_000;
    let mut rng = Rng(0x5eed);
    let mut lines = Vec::new();
    for index in 0..30_000_i64 {
        let time = newterms_guest::time::format_iso8601(
            MARCH_1_2024 + (index * 150 + rng.below(6_000) as i64) * 1_000,
        );
        let user = format!("user-{}", rng.below(2_000));
        let line = match rng.below(100) {
            0..=49 => direct_invoke(&user, &time).to_string(),
            50..=69 => with(
                direct_invoke(&user, &time),
                "/userIdentity",
                json!({"type": "AWSService", "invokedBy": "s3.amazonaws.com"}),
            )
            .to_string(),
            70..=74 => json!({
                "@timestamp": time, "data_stream": {"dataset": "aws.cloudtrail"},
                "event": {"provider": "lambda.amazonaws.com", "action": "Invoke",
                          "outcome": "success", "id": format!("ecs-{index}")},
                "cloud": {"account": {"id": "1"}},
                "user": {"name": [user, format!("user-{}", rng.below(2_000))]},
            })
            .to_string(),
            75..=79 => direct_invoke(&user, &time).to_string().replacen(
                "lambda.amazonaws.com",
                "lambda.amazonaws.co\\u006d",
                1,
            ),
            80 => direct_invoke(&user, "yesterday").to_string(),
            81 => without_time(direct_invoke(&user, &time)),
            82 => "[1, 2]".to_owned(),
            83 => format!("{{\"eventSource\": \"lambda.amazonaws.com\", {user}"),
            _ => json!({"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
                        "eventTime": time, "eventID": format!("noise-{index}")})
            .to_string(),
        };
        lines.push(line);
    }
    let path = directory.join("generated.ndjson");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

fn without_time(mut event: Value) -> String {
    if let Some(object) = event.as_object_mut() {
        object.remove("eventTime");
    }
    event.to_string()
}

#[test]
fn threads_raise_exactly_the_alerts_of_one_thread() {
    let directory = scratch("threads-same");
    let generated = generated_stream(&directory);
    let corpora = vec![
        fixture("cloudtrail/mixed_all.ndjson.gz"),
        fixture("cloudtrail/lambda_invoke.ndjson"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/lambda-invocations.ndjson"),
    ];
    let mut deliveries: Vec<PathBuf> = std::fs::read_dir(fixture("cloudtrail/flaws2"))
        .expect("fixture")
        .map(|entry| entry.expect("entry").path())
        .collect();
    deliveries.sort();
    deliveries.push(fixture(
        "cloudtrail/invictus/218007301253_CloudTrail_us-east-1_20230710T1145Z_7xgocspSowgK0Gto.json",
    ));
    for profile in ["default", "elastic"] {
        // Small batches: many of them, so that each thread gets many and their answers interleave.
        let args = ["--profile", profile, "--batch-size", "64"];
        let alerts = same_at_every_thread_count(&args, std::slice::from_ref(&generated));
        assert!(alerts.len() > 2_000, "{profile}: {} alerts", alerts.len());
        let alerts = same_at_every_thread_count(&args, &corpora);
        // The example's (six, five in the elastic profile, which does not see a root identity).
        assert!(alerts.len() >= 5, "{profile}: {} alerts", alerts.len());
        same_at_every_thread_count(&args, &deliveries);
    }
    // Exceptions, a short window, a small history that evicts, and learn mode.
    let config = directory.join("rule.toml");
    std::fs::write(
        &config,
        "window = \"2h\"\ncapacity = 300\n[[exceptions]]\nfield = \"user.name\"\nvalues = [\"user-1*\"]\n",
    )
    .expect("write");
    let alerts = same_at_every_thread_count(
        &["--config", text(&config), "--batch-size", "100"],
        std::slice::from_ref(&generated),
    );
    assert!(alerts.len() > 2_000, "{} alerts", alerts.len());
    let learned = same_at_every_thread_count(&["--learn"], std::slice::from_ref(&generated));
    assert!(learned.is_empty());
    // A stream from standard input, in OCSF.
    let stream = std::fs::read(&generated).expect("generated stream");
    let run = |threads: &str| {
        let args = [
            "scan",
            "--threads",
            threads,
            "--format",
            "ocsf",
            "--batch-size",
            "50",
        ];
        newterms(&args, &stream)
    };
    let one = run("1");
    assert!(one.status.success(), "{}", one.stderr);
    assert!(one.alerts.len() > 2_000);
    let three = run("3");
    assert!(
        three.stdout == one.stdout,
        "stdin: alerts differ at 3 threads"
    );
    assert_eq!(steady(&three.stderr), steady(&one.stderr));
}

/// A plain file is read in ranges, each by the thread that extracts it (with one thread, by the
/// reader), and a stream line by line: the same bytes give the same alerts and the same
/// diagnostics, at the same lines, either way. The lines hold what a range read straight cannot
/// take (blank, padded and CRLF lines, bytes that are not UTF-8, delivery documents on one line,
/// broken JSON), spread over many ranges, and batches smaller than a range.
#[test]
fn a_file_read_in_ranges_gives_what_standard_input_gives() {
    let directory = scratch("threads-ranges");
    let generated = std::fs::read(generated_stream(&directory)).expect("generated stream");
    let mut bytes = Vec::new();
    for (index, line) in generated.split(|&byte| byte == b'\n').enumerate() {
        match index % 997 {
            0 => bytes.extend_from_slice(b"\n  \r\n"),
            1 => bytes.extend_from_slice(b"{\"not\": \"UTF-8 \xff\"}\n"),
            2 => {
                let record = direct_invoke(&format!("delivered-{index}"), "2024-03-02T00:00:00Z");
                bytes.extend_from_slice(format!("{{\"Records\": [{record}, [1]]}}\n").as_bytes());
            }
            3 => bytes.extend_from_slice(b"{\"Records\": [\n"),
            4 => bytes.push(b' '),
            _ => {}
        }
        bytes.extend_from_slice(line);
        bytes.extend_from_slice(if index % 5 == 0 { b"\r\n" } else { b"\n" });
    }
    // A last line with no line break.
    bytes.extend_from_slice(
        direct_invoke("last", "2024-04-01T00:00:00Z")
            .to_string()
            .as_bytes(),
    );
    let path = directory.join("odd-lines.ndjson");
    std::fs::write(&path, &bytes).expect("write");
    assert!(bytes.len() > 8 << 20, "{} bytes", bytes.len());
    for batch in ["256", "7"] {
        let streamed = newterms(&["scan", "--batch-size", batch, "-"], &bytes);
        assert!(streamed.status.success(), "{}", streamed.stderr);
        assert!(
            streamed.alerts.len() > 1_000,
            "{} alerts",
            streamed.alerts.len()
        );
        for said in ["not UTF-8", "malformed delivery document", "(record 2)"] {
            assert!(
                streamed.stderr.contains(said),
                "{said}: {}",
                streamed.stderr
            );
        }
        for threads in ["1", "2"] {
            let ranged = newterms(
                &[
                    "scan",
                    "--threads",
                    threads,
                    "--batch-size",
                    batch,
                    text(&path),
                ],
                b"",
            );
            assert!(
                ranged.stdout == streamed.stdout,
                "--threads {threads} --batch-size {batch}: alerts differ from the stream's"
            );
            // Ranges end their batches at other lines than a stream does: diagnostics are said
            // in input order all the same.
            assert_eq!(
                steady(&ranged.stderr.replace(text(&path), "<stdin>")),
                steady(&streamed.stderr),
                "--threads {threads} --batch-size {batch}"
            );
        }
    }
}

/// A pack is split into the same stages (its terms staged with their rule's place): every rule file
/// the repository keeps (CloudTrail rules with fields of the fast path and of the full path, ECS
/// rules of other data sources) over the generated stream and real CloudTrail.
#[test]
fn a_rule_pack_with_threads_raises_the_alerts_of_one_thread() {
    let directory = scratch("threads-pack");
    let generated = generated_stream(&directory);
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest/tests/data/elastic-rules");
    let alerts = same_at_every_thread_count(
        &["--rules", text(&rules), "--batch-size", "64"],
        &[generated, fixture("cloudtrail/mixed_all.ndjson.gz")],
    );
    assert!(alerts.len() > 2_000, "{} alerts", alerts.len());
    let rules_alerting: std::collections::BTreeSet<&str> = alerts
        .iter()
        .filter_map(|alert| alert["kibana"]["alert"]["rule"]["rule_id"].as_str())
        .collect();
    assert!(rules_alerting.len() >= 3, "{rules_alerting:?}");
}

/// Killed at random moments and run again until it finishes, a scan with 3 threads leaves the alert
/// file and the state of one uninterrupted run with one thread.
#[test]
fn killed_with_threads_it_ends_with_the_alerts_of_one_uninterrupted_thread() {
    let directory = scratch("threads-crash");
    let inputs = stream(&directory);
    killed_with_threads_ends_as_one_uninterrupted_thread(&directory, &inputs, 6, 99);
}

/// The hostile component's marker events become the same dead letters, with the same reasons, and
/// every other event the same alerts, with threads as with one.
#[test]
fn a_hostile_event_is_the_same_dead_letter_with_threads() {
    let directory = scratch("threads-hostile");
    let stream = hostile_stream();
    let input = directory.join("stream.ndjson");
    write_ndjson(&input, &stream);
    let mut letters = Vec::new();
    let mut outputs = Vec::new();
    for threads in ["1", "2", "3"] {
        let dead = directory.join(format!("dead-{threads}.ndjson"));
        let run = newterms(
            &[
                "scan",
                "--threads",
                threads,
                "--rule",
                newterms_test_artifacts::HOSTILE_COMPONENT,
                "--cpu-deadline-ms",
                "200",
                "--max-memory",
                "64",
                "--batch-size",
                "32",
                "--dead-letter",
                text(&dead),
                text(&input),
            ],
            b"",
        );
        assert!(run.status.success(), "{}", run.stderr);
        assert!(run.stderr.contains("4 events set aside"), "{}", run.stderr);
        assert_eq!(run.alerts.len(), 251);
        outputs.push(run.stdout);
        // Each letter's event, place and fault (the trap's details, such as how much memory the
        // instance asked for past its cap, depend on what that instance held).
        let letter_lines: Vec<(Value, Value, String)> = std::fs::read_to_string(&dead)
            .expect("dead letters")
            .lines()
            .map(|line| {
                let letter: Value = serde_json::from_str(line).expect("JSON line");
                let reason = letter["reason"].as_str().unwrap_or("");
                let fault = reason.split(": error while executing").next();
                (
                    letter["event"].clone(),
                    letter["location"].clone(),
                    fault.unwrap_or("").to_owned(),
                )
            })
            .collect();
        letters.push(letter_lines);
    }
    assert_eq!(letters[0].len(), 4);
    for (marker, (event, _, _)) in HOSTILE_MARKERS.iter().zip(&letters[0]) {
        assert!(event.as_str().unwrap_or("").contains(marker), "{event}");
    }
    for threads in 1..3 {
        assert!(
            outputs[threads] == outputs[0],
            "alerts differ at {} threads",
            threads + 1
        );
        assert_eq!(
            letters[threads],
            letters[0],
            "dead letters at {} threads",
            threads + 1
        );
    }
}

/// SIGTERM during a scan with 3 threads: it finishes its batch, checkpoints and exits 0; the same
/// command then resumes, and the alert file is that of one uninterrupted thread.
#[test]
fn sigterm_with_threads_checkpoints_and_the_next_run_resumes() {
    let directory = scratch("threads-sigterm");
    let inputs = stream(&directory);
    let (reference_state, reference_alerts) =
        (directory.join("ref.state"), directory.join("ref.ndjson"));
    let mut reference_args = scan_args(&reference_state, &reference_alerts, &inputs);
    reference_args.extend(["--threads", "1"]);
    assert!(newterms(&reference_args, b"").status.success());

    let (state, output) = (directory.join("state"), directory.join("alerts.ndjson"));
    let mut args = scan_args(&state, &output, &inputs);
    args.extend(["--threads", "3"]);
    let mut child = spawn(&args);
    let checkpoint = directory.join("state.checkpoint");
    while !checkpoint.exists() && child.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    let stderr = std::io::read_to_string(child.stderr.take().expect("stderr")).expect("stderr");
    assert!(status.success(), "{stderr}");
    if stderr.contains("stopped; run the same command again to resume") {
        let resumed = newterms(&args, b"");
        assert!(
            resumed.stderr.contains("resuming an interrupted scan"),
            "{}",
            resumed.stderr
        );
    }
    assert!(
        std::fs::read(&output).expect("alerts") == std::fs::read(&reference_alerts).expect("ref")
    );
    assert_eq!(
        std::fs::read(&state).expect("state"),
        std::fs::read(&reference_state).expect("ref state")
    );
}
