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
