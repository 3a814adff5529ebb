//! Crashes and restarts: a real `newterms` process killed with SIGKILL at random moments, run again
//! with the same arguments until it finishes, must leave exactly the alert file and the state of a
//! run that was never interrupted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use newterms::StateLock;

use crate::support::{direct_invoke, newterms, scratch, write_ndjson};

/// A small deterministic generator: the kill moments vary, the assertions do not.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// 16,000 direct invocations by 1,500 principals over 50 days: many first sightings, and many
/// principals quiet for longer than the window who alert again. Split over a plain and a gzip file.
pub(crate) fn stream(directory: &Path) -> Vec<PathBuf> {
    const MARCH_1_2024: i64 = 1_709_251_200_000;
    let mut random = Lcg(7);
    let mut files = Vec::new();
    for (part, name) in ["part-1.ndjson", "part-2.ndjson.gz"].iter().enumerate() {
        let mut text = String::new();
        for index in 0..8_000 {
            let second = (part * 8_000 + index) as i64 * 270 + (random.next() % 270) as i64;
            let time = newterms_guest::time::format_iso8601(MARCH_1_2024 + second * 1_000);
            let user = format!("user-{}", random.next() % 1_500);
            text.push_str(&direct_invoke(&user, &time).to_string());
            text.push('\n');
        }
        let path = directory.join(name);
        if name.ends_with(".gz") {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(text.as_bytes()).expect("gzip");
            std::fs::write(&path, encoder.finish().expect("gzip")).expect("write");
        } else {
            std::fs::write(&path, text).expect("write");
        }
        files.push(path);
    }
    files
}

pub(crate) fn scan_args<'a>(
    state: &'a Path,
    output: &'a Path,
    inputs: &'a [PathBuf],
) -> Vec<&'a str> {
    let mut args = vec![
        "scan",
        "--state",
        state.to_str().expect("path"),
        "--output",
        output.to_str().expect("path"),
        "--checkpoint-events",
        "1000",
        "--batch-size",
        "256",
    ];
    args.extend(inputs.iter().map(|path| path.to_str().expect("path")));
    args
}

/// Scans of `inputs` with `extra` arguments, killed at random moments and run again until they
/// finish, each of which must end as an uninterrupted run did.
pub(crate) struct Trials<'a> {
    pub(crate) directory: &'a Path,
    pub(crate) inputs: &'a [PathBuf],
    pub(crate) extra: &'a [&'a str],
    pub(crate) run_ms: u64,
    pub(crate) expected_alerts: &'a [u8],
    pub(crate) expected_state: &'a [u8],
}

impl Trials<'_> {
    /// `trials` scans, each on a state file `prepare` makes (nothing: a new history), killed until
    /// it finishes ([`run_until_finished`]): each must end with the expected alerts and state, its
    /// checkpoint ended. How many runs were killed and how many resumed, in all.
    pub(crate) fn run(&self, trials: usize, seed: u64, prepare: impl Fn(&Path)) -> (usize, usize) {
        let mut random = Lcg(seed);
        let (mut kills, mut resumed) = (0, 0);
        for trial in 0..trials {
            let state = self.directory.join(format!("trial-{trial}.state"));
            let output = self.directory.join(format!("trial-{trial}.ndjson"));
            prepare(&state);
            let mut args = scan_args(&state, &output, self.inputs);
            args.extend(self.extra);
            let (killed, resumed_runs) = run_until_finished(&args, self.run_ms, &mut random);
            kills += killed;
            resumed += resumed_runs;
            assert!(
                std::fs::read(&output).expect("alerts") == self.expected_alerts,
                "trial {trial}: alert file differs"
            );
            assert_eq!(
                std::fs::read(&state).expect("state"),
                self.expected_state,
                "trial {trial}: state differs"
            );
            assert!(crate::support::ended(
                &self
                    .directory
                    .join(format!("trial-{trial}.state.checkpoint"))
            ));
        }
        (kills, resumed)
    }
}

/// Runs `args` again and again, each run killed at a random moment within three quarters of
/// `run_ms` unless it finished first, until one finishes; how many were killed and how many said
/// they resumed an interrupted scan. The window widens by that much every ten attempts: on a
/// machine busier than when `run_ms` was timed, a run killed before its first checkpoint gains
/// nothing, and without it the same kills could land there every time.
pub(crate) fn run_until_finished(args: &[&str], run_ms: u64, random: &mut Lcg) -> (usize, usize) {
    let (mut kills, mut resumed) = (0, 0);
    for attempt in 0_u64.. {
        assert!(attempt < 60, "{args:?} never finished");
        let mut child = spawn(args);
        let window = run_ms * 3 / 4 * (1 + attempt / 10);
        std::thread::sleep(Duration::from_millis(random.next() % (window + 1)));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("kill");
            kills += 1;
        }
        let status = child.wait().expect("wait");
        let stderr = std::io::read_to_string(child.stderr.take().expect("stderr")).expect("stderr");
        resumed += usize::from(stderr.contains("resuming an interrupted scan"));
        if status.success() {
            break;
        }
    }
    (kills, resumed)
}

pub(crate) fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_newterms"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn newterms")
}

#[test]
fn killed_at_random_points_it_ends_with_the_alerts_of_an_uninterrupted_run() {
    let directory = scratch("crash");
    let inputs = stream(&directory);
    let (reference_state, reference_alerts) =
        (directory.join("ref.state"), directory.join("ref.ndjson"));
    let started = std::time::Instant::now();
    let reference = newterms(
        &scan_args(&reference_state, &reference_alerts, &inputs),
        b"",
    );
    // Kill moments spread over a whole run, however fast this machine is today.
    let run_ms = started.elapsed().as_millis() as u64 + 1;
    assert!(reference.status.success(), "{}", reference.stderr);
    assert!(
        reference.stderr.contains("16000 events read"),
        "{}",
        reference.stderr
    );
    assert!(
        reference.stderr.contains(" 0 errors"),
        "{}",
        reference.stderr
    );
    let expected_alerts = std::fs::read(&reference_alerts).expect("reference alerts");
    let expected_state = std::fs::read(&reference_state).expect("reference state");
    assert!(
        expected_alerts
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            > 2_000,
        "the stream raises many alerts"
    );

    let trials = Trials {
        directory: &directory,
        inputs: &inputs,
        extra: &[],
        run_ms,
        expected_alerts: &expected_alerts,
        expected_state: &expected_state,
    };
    let (kills, resumed) = trials.run(10, 2024, |_| {});
    eprintln!("crash harness: {kills} kills, {resumed} resumed runs, all 10 trials exact");
    assert!(
        kills >= 10,
        "the harness killed too rarely to mean anything ({kills})"
    );
    assert!(
        resumed >= 5,
        "too few kills landed after a checkpoint ({resumed})"
    );
}

/// One thread with a history large enough that it journals terms rather than events (a snapshot
/// over 1 MiB, so over 1/64 of the journal's cap: 40,000 principals learned first), killed at random
/// moments and run again until it finishes: the alert file and the state of an uninterrupted run.
#[test]
fn killed_with_a_large_history_one_thread_ends_as_an_uninterrupted_run() {
    let directory = scratch("crash-large-history");
    let inputs = stream(&directory);
    let learned = directory.join("learned.ndjson");
    let principals: Vec<_> = (0..40_000)
        .map(|user| direct_invoke(&format!("learned-{user:05}"), "2024-03-01T00:00:00Z"))
        .collect();
    write_ndjson(&learned, &principals);
    let config = directory.join("learn.toml");
    std::fs::write(&config, "learn = true\n").expect("config");
    let base = directory.join("base.state");
    let (config_path, base_path, learned_path) = (
        config.to_str().expect("path"),
        base.to_str().expect("path"),
        learned.to_str().expect("path"),
    );
    let learning = newterms(
        &[
            "scan",
            "--config",
            config_path,
            "--state",
            base_path,
            learned_path,
        ],
        b"",
    );
    assert!(learning.status.success(), "{}", learning.stderr);
    let base_bytes = std::fs::read(&base).expect("learned state");
    assert!(base_bytes.len() > 1 << 20, "{} bytes", base_bytes.len());

    // Every run, the uninterrupted one and each trial, starts from the learned history.
    let learned_history = |state: &Path| std::fs::write(state, &base_bytes).expect("state");
    let (reference_state, reference_alerts) =
        (directory.join("ref.state"), directory.join("ref.ndjson"));
    learned_history(&reference_state);
    let mut reference_args = scan_args(&reference_state, &reference_alerts, &inputs);
    reference_args.extend(["--threads", "1"]);
    let started = std::time::Instant::now();
    let reference = newterms(&reference_args, b"");
    let run_ms = started.elapsed().as_millis() as u64 + 1;
    assert!(reference.status.success(), "{}", reference.stderr);
    let expected_alerts = std::fs::read(&reference_alerts).expect("reference alerts");
    let expected_state = std::fs::read(&reference_state).expect("reference state");

    let trials = Trials {
        directory: &directory,
        inputs: &inputs,
        extra: &["--threads", "1"],
        run_ms,
        expected_alerts: &expected_alerts,
        expected_state: &expected_state,
    };
    let (kills, resumed) = trials.run(5, 32, learned_history);
    eprintln!("large-history crash harness: {kills} kills, {resumed} resumed runs");
    assert!(kills >= 5, "the harness killed too rarely ({kills})");
    assert!(
        resumed >= 2,
        "too few kills landed after a checkpoint ({resumed})"
    );
}

#[test]
fn a_finished_run_leaves_nothing_pending() {
    let directory = scratch("finished");
    let input = directory.join("events.ndjson");
    crate::support::write_ndjson(&input, &[direct_invoke("alice", "2024-03-01T00:00:00Z")]);
    let state = directory.join("state");
    let output = directory.join("alerts.ndjson");
    let args = scan_args(&state, &output, std::slice::from_ref(&input));
    assert_eq!(newterms(&args, b"").status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&output)
            .expect("alerts")
            .lines()
            .count(),
        1
    );
    // The same scan again (as after a kill while it exited): nothing to do, its alerts stay.
    let again = newterms(&args, b"");
    assert_eq!(again.status.code(), Some(0));
    assert!(again.stderr.contains("already ended"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(&output)
            .expect("alerts")
            .lines()
            .count(),
        1
    );
    // A changed input is another scan: read from the start, with the history of the first run.
    crate::support::write_ndjson(
        &input,
        &[
            direct_invoke("alice", "2024-03-01T00:00:00Z"),
            direct_invoke("bob", "2024-03-02T00:00:00Z"),
        ],
    );
    let changed = newterms(&args, b"");
    assert!(
        changed.stderr.contains("2 events read"),
        "{}",
        changed.stderr
    );
    let alerts = std::fs::read_to_string(&output).expect("alerts");
    assert_eq!(alerts.lines().count(), 1, "{alerts}");
    assert!(alerts.contains("bob"), "{alerts}");
}

#[test]
fn sigterm_checkpoints_and_the_next_run_resumes() {
    let directory = scratch("sigterm");
    let inputs = stream(&directory);
    let (reference_state, reference_alerts) =
        (directory.join("ref.state"), directory.join("ref.ndjson"));
    assert!(
        newterms(
            &scan_args(&reference_state, &reference_alerts, &inputs),
            b""
        )
        .status
        .success()
    );

    let state = directory.join("state");
    let output = directory.join("alerts.ndjson");
    let args = scan_args(&state, &output, &inputs);
    let mut child = spawn(&args);
    // Once the first checkpoint is written the scan is under way: stop it there.
    let checkpoint = directory.join("state.checkpoint");
    while !checkpoint.exists() && child.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(2));
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
    let stderr = std::io::read_to_string(child.stderr.take().expect("stderr")).expect("stderr");
    assert!(status.success(), "{stderr}");
    if stderr.contains("stopped; run the same command again to resume") {
        assert!(directory.join("state.checkpoint").exists());
        let resumed = newterms(&args, b"");
        assert!(
            resumed.stderr.contains("resuming an interrupted scan"),
            "{}",
            resumed.stderr
        );
    }
    assert_eq!(
        std::fs::read(&output).expect("alerts"),
        std::fs::read(&reference_alerts).expect("ref")
    );
}

#[test]
fn a_second_process_on_the_same_state_is_refused() {
    let directory = scratch("locked");
    let state = directory.join("state");
    let _held = StateLock::acquire(&state).expect("first lock");
    let input = directory.join("events.ndjson");
    crate::support::write_ndjson(&input, &[direct_invoke("alice", "2024-03-01T00:00:00Z")]);
    let run = newterms(
        &[
            "scan",
            "--state",
            state.to_str().expect("path"),
            input.to_str().expect("path"),
        ],
        b"",
    );
    assert!(!run.status.success());
    assert!(
        run.stderr
            .contains("another newterms process is using this state"),
        "{}",
        run.stderr
    );
    assert!(!state.exists(), "the state is not touched");
}

#[test]
fn alerts_on_stdout_are_at_least_once_with_stable_ids() {
    let directory = scratch("stdout-replay");
    let inputs = stream(&directory);
    let mut whole = vec!["scan"];
    whole.extend(inputs.iter().map(|path| path.to_str().expect("path")));
    let reference = newterms(&whole, b"");
    let expected: std::collections::HashSet<String> = reference
        .alerts
        .iter()
        .map(|alert| alert["kibana"]["alert"]["uuid"].to_string())
        .collect();

    let state = directory.join("state");
    let mut args = vec![
        "scan",
        "--state",
        state.to_str().expect("path"),
        "--checkpoint-events",
        "1000",
    ];
    args.extend(inputs.iter().map(|path| path.to_str().expect("path")));
    let mut child = Command::new(env!("CARGO_BIN_EXE_newterms"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Drain stdout meanwhile, or the scan blocks on a full pipe before its first checkpoint.
    let mut stdout = child.stdout.take().expect("stdout");
    let drain =
        std::thread::spawn(move || std::io::read_to_string(&mut stdout).unwrap_or_default());
    let checkpoint = directory.join("state.checkpoint");
    while !checkpoint.exists() && child.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let first_text = drain.join().expect("stdout");
    let second = newterms(&args, b"");
    assert!(second.status.success(), "{}", second.stderr);

    let mut seen = std::collections::HashSet::new();
    // The kill may cut the last line short: only whole lines were delivered.
    for line in first_text.lines().filter(|line| line.ends_with('}')) {
        let alert: serde_json::Value = serde_json::from_str(line).expect("alert");
        seen.insert(alert["kibana"]["alert"]["uuid"].to_string());
    }
    for alert in &second.alerts {
        seen.insert(alert["kibana"]["alert"]["uuid"].to_string());
    }
    assert_eq!(
        seen, expected,
        "every alert delivered at least once, and nothing else"
    );
}
