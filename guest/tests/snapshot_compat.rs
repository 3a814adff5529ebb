//! Snapshot format 1, as this version writes it, kept as a fixture: every later version of the rule
//! must still restore it (by reading it, or by migrating it), with the same history.
//!
//! The fixture holds the history of a detector of capacity 3 that saw, in this order: `evicted`
//! (2024-01-01), alice (01-02), bob (01-03T00:00:00.250), carol (01-04), alice again (01-05); so
//! `evicted` was evicted, and alice is the most recently seen.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use newterms_guest::{Config, Detector, Profile, RestoreError};

const FORMAT_1: &[u8] = include_bytes!("../../tests/fixtures/state/snapshot-v1.bin");

fn invoke(user: &str, time: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{time}","eventSource":"lambda.amazonaws.com","eventName":"Invoke","eventID":"{user}-{time}","recipientAccountId":"123456789012","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/{user}","accountId":"123456789012","userName":"{user}"}}}}"#
    )
}

fn restored(capacity: u32) -> Detector {
    let mut detector = Detector::new(Config {
        capacity: Some(capacity),
        ..Config::default()
    })
    .expect("config");
    detector.restore(FORMAT_1).expect("format 1 restores");
    detector
}

#[test]
fn format_1_restores_with_its_history() {
    let mut detector = restored(10);
    let stats = detector.stats();
    assert_eq!((stats.terms, stats.evictions), (3, 1));
    // bob was last seen 2024-01-03T00:00:00.250Z: 14 days later to the millisecond is still known,
    // one millisecond more is new.
    assert_eq!(
        detector
            .process(&invoke("bob", "2024-01-17T00:00:00.250Z"))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        detector
            .process(&invoke("carol", "2024-01-18T00:00:00.001Z"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        detector
            .process(&invoke("alice", "2024-01-06T00:00:00Z"))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        detector
            .process(&invoke("evicted", "2024-01-06T00:00:00Z"))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn format_1_keeps_recency_order() {
    // Capacity 3 and a fourth term: the least recently seen of the fixture (bob) goes first.
    let mut detector = restored(3);
    detector
        .process(&invoke("dave", "2024-01-06T00:00:00Z"))
        .unwrap();
    assert_eq!(
        detector
            .process(&invoke("bob", "2024-01-06T00:00:00Z"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        detector.stats().evictions,
        3,
        "1 from the fixture, bob, then carol for bob"
    );
}

#[test]
fn this_version_still_writes_format_1() {
    assert_eq!(restored(3).snapshot(), FORMAT_1);
}

#[test]
fn format_1_is_refused_by_another_profile() {
    let mut elastic = Detector::new(Config {
        profile: Profile::Elastic,
        ..Config::default()
    })
    .expect("config");
    assert!(matches!(
        elastic.restore(FORMAT_1),
        Err(RestoreError::Incompatible(_))
    ));
}
