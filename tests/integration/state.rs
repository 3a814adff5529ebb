//! Snapshots through the component boundary, and the state stores.

use newterms::{
    Error, FileStateStore, MemoryStateStore, Profile, RestoreError, RuleConfig, StateStore,
};

use crate::support::{alerts, direct_invoke, rule, scratch};

fn snapshot_with(users: &[&str]) -> Vec<u8> {
    let mut instance = rule(&RuleConfig::default());
    for user in users {
        alerts(&mut instance, &direct_invoke(user, "2024-03-01T00:00:00Z"));
    }
    instance.snapshot().expect("snapshot")
}

fn refused(snapshot: &[u8], config: &RuleConfig) -> RestoreError {
    let mut instance = rule(config);
    match instance.restore(snapshot) {
        Err(Error::Restore(error)) => {
            // Refused, and the instance still works and is still empty.
            assert_eq!(instance.stats().expect("usable after refusal").terms, 0);
            error
        }
        other => panic!("expected a typed refusal, got {other:?}"),
    }
}

#[test]
fn snapshot_round_trips_across_instances() {
    let snapshot = snapshot_with(&["alice", "bob"]);
    let mut restored = rule(&RuleConfig::default());
    restored.restore(&snapshot).expect("restore");
    assert_eq!(restored.stats().expect("stats").terms, 2);
    assert_eq!(
        restored.snapshot().expect("snapshot"),
        snapshot,
        "restoring changes nothing"
    );
    assert_eq!(
        alerts(
            &mut restored,
            &direct_invoke("alice", "2024-03-02T00:00:00Z")
        )
        .len(),
        0
    );
}

#[test]
fn damaged_snapshots_are_typed_errors() {
    let snapshot = snapshot_with(&["alice", "bob"]);
    let default = RuleConfig::default();
    assert_eq!(refused(b"", &default), RestoreError::BadMagic);
    assert_eq!(
        refused(b"{\"Records\": []}", &default),
        RestoreError::BadMagic
    );
    assert_eq!(
        refused(&snapshot[..snapshot.len() / 2], &default),
        RestoreError::Truncated
    );
    let mut flipped = snapshot.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    assert_eq!(refused(&flipped, &default), RestoreError::ChecksumMismatch);
    let mut newer = snapshot.clone();
    newer[8..12].copy_from_slice(&2_u32.to_le_bytes());
    assert_eq!(
        refused(&newer, &default),
        RestoreError::UnsupportedVersion(2)
    );
    let elastic = RuleConfig {
        profile: Profile::Elastic,
        ..RuleConfig::default()
    };
    assert!(matches!(
        refused(&snapshot, &elastic),
        RestoreError::Incompatible(_)
    ));
}

#[test]
fn file_store_replaces_atomically() {
    let directory = scratch("file-store");
    let store = FileStateStore::new(directory.join("state.bin"));
    assert_eq!(store.load().expect("load"), None);
    store.save(b"first").expect("save");
    store.save(b"second").expect("save");
    assert_eq!(store.load().expect("load").as_deref(), Some(&b"second"[..]));
    let leftovers: Vec<_> = std::fs::read_dir(&directory)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["state.bin"], "no temporary file is left behind");

    let unwritable = FileStateStore::new(directory.join("missing-dir/state.bin"));
    assert!(matches!(unwritable.save(b"x"), Err(Error::Io { .. })));
}

#[test]
fn memory_store_keeps_the_last_snapshot() {
    let store = MemoryStateStore::default();
    assert_eq!(store.load().expect("load"), None);
    store.save(b"a").expect("save");
    store.save(b"b").expect("save");
    assert_eq!(store.load().expect("load").as_deref(), Some(&b"b"[..]));
}

/// Invocations by 3 accounts x `principals` principals over `days` days from `start_day` of March
/// 2024.
fn invocations(
    seed: u64,
    principals: u64,
    start_day: i64,
    days: i64,
    count: usize,
) -> Vec<serde_json::Value> {
    let mut random = seed;
    let mut next = move || {
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        random >> 33
    };
    (0..count)
        .map(|index| {
            let minute = start_day * 1_440 + (index as i64 * days * 1_440) / count as i64;
            let time = newterms_guest::time::format_iso8601(1_709_251_200_000 + minute * 60_000);
            let account = format!("{:012}", 100 + next() % 3);
            let user = format!("principal-{}", next() % principals);
            let event = crate::support::direct_invoke(&user, &time);
            let event =
                crate::support::with(event, "/userIdentity/accountId", serde_json::json!(account));
            crate::support::with(
                event,
                "/eventID",
                serde_json::json!(format!("{seed}-{index}")),
            )
        })
        .collect()
}

#[test]
fn states_of_workers_split_by_term_merge_into_one_history() {
    use crate::support::{newterms, write_ndjson};
    let directory = scratch("merge");
    let path = |name: &str| directory.join(name);
    let arg = |path: &std::path::Path| path.to_str().expect("path").to_owned();
    let first = invocations(11, 40, 0, 30, 3_000);
    // Later: 20 new principals per account, and the 40 known ones.
    let later = invocations(12, 60, 35, 20, 2_000);
    write_ndjson(&path("all.ndjson"), &first);
    write_ndjson(&path("later.ndjson"), &later);

    // Partition by term, as a pipeline keyed by account and principal would.
    let worker_of = |event: &serde_json::Value| {
        let key = format!(
            "{}/{}",
            event["userIdentity"]["accountId"], event["userIdentity"]["userName"]
        );
        key.bytes().fold(0_u32, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(u32::from(byte))
        }) % 3
    };
    let mut worker_alerts = Vec::new();
    let mut states = Vec::new();
    for worker in 0..3 {
        let share: Vec<_> = first
            .iter()
            .filter(|event| worker_of(event) == worker)
            .cloned()
            .collect();
        let input = path(&format!("worker-{worker}.ndjson"));
        write_ndjson(&input, &share);
        let state = path(&format!("worker-{worker}.state"));
        let run = newterms(&["scan", "--state", &arg(&state), &arg(&input)], b"");
        assert!(run.status.success(), "{}", run.stderr);
        worker_alerts.extend(
            run.alerts
                .iter()
                .map(|alert| alert["kibana"]["alert"]["uuid"].to_string()),
        );
        states.push(arg(&state));
    }
    let single = newterms(
        &[
            "scan",
            "--state",
            &arg(&path("single.state")),
            &arg(&path("all.ndjson")),
        ],
        b"",
    );
    let mut single_alerts: Vec<String> = single
        .alerts
        .iter()
        .map(|alert| alert["kibana"]["alert"]["uuid"].to_string())
        .collect();
    worker_alerts.sort();
    single_alerts.sort();
    assert_eq!(
        worker_alerts, single_alerts,
        "the workers together raise what one worker raises"
    );

    let mut merge = vec!["state", "merge", "--output"];
    let merged = arg(&path("merged.state"));
    merge.push(&merged);
    merge.extend(states.iter().map(String::as_str));
    let run = newterms(&merge, b"");
    assert!(run.status.success(), "{}", run.stderr);

    // The merged history continues exactly as the single worker's.
    let after_merge = newterms(
        &["scan", "--state", &merged, &arg(&path("later.ndjson"))],
        b"",
    );
    let after_single = newterms(
        &[
            "scan",
            "--state",
            &arg(&path("single.state")),
            &arg(&path("later.ndjson")),
        ],
        b"",
    );
    assert!(
        after_single.alerts.len() >= 60,
        "at least the 20 new principals of each account"
    );
    assert_eq!(after_merge.alerts, after_single.alerts);

    let inspect = newterms(&["state", "inspect", "--json", &merged], b"");
    let summary: serde_json::Value =
        serde_json::from_str(inspect.stdout.trim()).expect("JSON summary");
    // The continuation saved into the merged state: 3 accounts x 60 principals by now.
    assert_eq!(summary["terms"], 180);
    assert_eq!(summary["terms_per_account"]["000000000100"], 60);
    assert_eq!(summary["rule_id"], "07cd35a6-c267-4394-a782-6a9428aea9d3");

    let elastic_state = path("elastic.state");
    let elastic = newterms(
        &[
            "scan",
            "--profile",
            "elastic",
            "--state",
            &arg(&elastic_state),
            &arg(&path("later.ndjson")),
        ],
        b"",
    );
    assert!(elastic.status.success());
    let mixed = newterms(
        &[
            "state",
            "merge",
            "--output",
            &arg(&path("bad.state")),
            &merged,
            &arg(&elastic_state),
        ],
        b"",
    );
    assert!(!mixed.status.success());
    assert!(mixed.stderr.contains("cannot merge"), "{}", mixed.stderr);
}

#[test]
fn a_large_snapshot_crosses_in_pieces_and_linear_memory_grows_by_the_history_only() {
    // 100,000 terms, built natively in learn mode: a ~5 MB snapshot, several pieces each way.
    let mut learner = newterms_guest::Detector::new(newterms_guest::Config {
        learn: true,
        ..newterms_guest::Config::default()
    })
    .expect("config");
    for index in 0..100_000_u64 {
        let time = newterms_guest::time::format_iso8601(1_709_251_200_000 + index as i64 * 1_000);
        let event = crate::support::direct_invoke(&format!("principal-{index:06}"), &time);
        learner.process(&event.to_string()).expect("valid");
    }
    let snapshot = learner.snapshot();
    assert!(snapshot.len() > 4 << 20, "{} bytes", snapshot.len());

    let mut instance = rule(&RuleConfig::default());
    let empty = instance.footprint().expect("footprint");
    instance.restore(&snapshot).expect("restore");
    let restored = instance.footprint().expect("footprint");
    assert_eq!(restored.terms, 100_000);
    assert_eq!(instance.snapshot().expect("snapshot"), snapshot);
    let saved = instance.footprint().expect("footprint");

    // A whole snapshot copied in or out would add its ~5 MB; pieces add at most a few MiB.
    let slack = 3 << 20;
    let growth = restored.linear_memory_bytes - empty.linear_memory_bytes;
    assert!(
        growth <= restored.history_bytes + slack,
        "restore grew linear memory by {growth} bytes for a history of {}",
        restored.history_bytes
    );
    assert!(
        saved.linear_memory_bytes <= restored.linear_memory_bytes + (2 << 20),
        "a save grew linear memory from {} to {}",
        restored.linear_memory_bytes,
        saved.linear_memory_bytes
    );
}

/// `state fold DIR` (a Fluent Bit filter's directory): the state restored, the journal's records
/// replayed through the component, written back with an empty journal naming it. The result is the
/// state `scan --state` makes of the same records, byte for byte; a torn last entry is left out (its
/// record comes again), and a journal that continues another snapshot is ignored.
#[test]
fn state_fold_replays_the_journal_through_the_component() {
    use newterms_snapshot::journal;

    let dir = scratch("fold");
    let users = |range: std::ops::Range<u32>| -> Vec<String> {
        range
            .map(|index| {
                let time = newterms_guest::time::format_iso8601(
                    1_709_251_200_000 + i64::from(index) * 60_000,
                );
                direct_invoke(&format!("user-{}", index % 7), &time).to_string()
            })
            .collect()
    };
    let first = users(0..10);
    let later = users(10..30);
    let write = |path: &std::path::Path, lines: &[String]| {
        std::fs::write(
            path,
            lines
                .iter()
                .map(|line| format!("{line}\n"))
                .collect::<String>(),
        )
        .expect("write events");
    };
    write(&dir.join("first.ndjson"), &first);
    write(&dir.join("later.ndjson"), &later);
    let scan = |state: &std::path::Path, input: &str| {
        let run = crate::support::newterms(
            &[
                "scan",
                "--state",
                &state.display().to_string(),
                &dir.join(input).display().to_string(),
            ],
            b"",
        );
        assert!(run.status.success(), "{}", run.stderr);
    };
    // The reference: the first events, then the later ones, through `scan --state`.
    let reference = dir.join("reference.state");
    scan(&reference, "first.ndjson");
    let filter_dir = dir.join("filter");
    std::fs::create_dir_all(&filter_dir).expect("filter dir");
    let state_path = filter_dir.join(journal::STATE_FILE);
    std::fs::copy(&reference, &state_path).expect("copy state");
    scan(&reference, "later.ndjson");

    // The filter's directory: the state after the first events, a journal of the later ones and a
    // torn entry at its end.
    let base = std::fs::read(&state_path).expect("state");
    let mut journal_bytes = journal::header(&base);
    let mut entry = Vec::new();
    for record in &later {
        journal::entry(record.as_bytes(), &mut entry);
        journal_bytes.extend_from_slice(&entry);
    }
    journal::entry(first[0].as_bytes(), &mut entry);
    journal_bytes.extend_from_slice(&entry[..entry.len() / 2]);
    let journal_path = filter_dir.join(journal::JOURNAL_FILE);
    std::fs::write(&journal_path, &journal_bytes).expect("journal");

    let fold =
        || crate::support::newterms(&["state", "fold", &filter_dir.display().to_string()], b"");
    let run = fold();
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("(20 records)"), "{}", run.stderr);
    let folded = std::fs::read(&state_path).expect("folded state");
    assert_eq!(folded, std::fs::read(&reference).expect("reference"));
    assert_eq!(
        std::fs::read(&journal_path).expect("journal"),
        journal::header(&folded)
    );

    // Folding again changes nothing; a journal naming another snapshot is ignored.
    let mut stale = journal::header(b"an older snapshot");
    journal::entry(users(40..41)[0].as_bytes(), &mut entry);
    stale.extend_from_slice(&entry);
    std::fs::write(&journal_path, &stale).expect("stale journal");
    let run = fold();
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.stderr.contains("(0 records)"), "{}", run.stderr);
    assert_eq!(std::fs::read(&state_path).expect("state"), folded);

    // Not a journal: refused, and the state is left as it is.
    std::fs::write(&journal_path, b"not a journal").expect("bad journal");
    let run = fold();
    assert!(!run.status.success());
    assert!(
        run.stderr.contains("is not a newterms journal"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&state_path).expect("state"), folded);
}
