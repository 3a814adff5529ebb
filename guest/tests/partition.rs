//! Partitioned instances, routed by the rule's own buckets, raise exactly the alerts of one instance:
//! random streams of raw CloudTrail records and ECS documents, some with array-valued term fields
//! (terms in several buckets), over 1 to 7 buckets.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use newterms_guest::detector::Partition;
use newterms_guest::{Config, Detector, Profile};
use serde_json::json;

mod common;
use common::Rng;

const DAY: i64 = 86_400_000;
const START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

fn stream(random: &mut Rng, events: usize) -> Vec<String> {
    let mut clock = START;
    (0..events)
        .map(|index| {
            clock += random.below(3 * DAY as usize) as i64 - DAY / 2;
            let time = newterms_guest::time::format_iso8601(clock);
            let account = format!("{:012}", random.below(4));
            let user = |random: &mut Rng| format!("user-{}", random.below(9));
            match random.below(10) {
                // ECS, several principals in one event: terms in several buckets.
                0..=2 => {
                    let names: Vec<String> = (0..1 + random.below(3)).map(|_| user(random)).collect();
                    json!({
                        "@timestamp": time,
                        "data_stream": {"dataset": "aws.cloudtrail"},
                        "event": {"provider": "lambda.amazonaws.com", "action": "Invoke",
                                  "outcome": "success", "id": format!("ecs-{index}")},
                        "cloud": {"account": {"id": account}},
                        "user": {"name": names},
                        "aws": {"cloudtrail": {"user_identity": {"arn": format!("arn:aws:iam::{account}:user/x")}}},
                    })
                }
                // Noise the rule ignores, and a line that is not JSON.
                3 => json!({"eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventTime": time}),
                4 if random.chance(20) => return "not json".to_owned(),
                // A direct invocation, raw CloudTrail.
                _ => json!({
                    "eventVersion": "1.08",
                    "eventTime": time,
                    "eventSource": "lambda.amazonaws.com",
                    "eventName": "Invoke",
                    "eventID": format!("raw-{index}"),
                    "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{account}:user/u"),
                                     "accountId": account, "userName": user(random)},
                }),
            }
            .to_string()
        })
        .collect()
}

fn detector(profile: Profile, partition: Option<Partition>) -> Detector {
    Detector::new(Config {
        profile,
        partition,
        ..Config::default()
    })
    .expect("config")
}

#[test]
fn partitions_raise_the_alerts_of_one_instance() {
    let mut random = Rng(0x5eed_0001);
    let mut spread_over_several = 0;
    for round in 0..12 {
        let events = stream(&mut random, 1_500);
        let profile = if round % 2 == 0 {
            Profile::Default
        } else {
            Profile::Elastic
        };
        let mut one = detector(profile, None);
        let mut expected: Vec<String> = Vec::new();
        let mut expected_errors = 0;
        for event in &events {
            match one.process(event) {
                Ok(alerts) => expected.extend(alerts),
                Err(_) => expected_errors += 1,
            }
        }
        let count = 1 + (round % 7) as u32;
        let mut parts: Vec<Detector> = (0..count)
            .map(|index| detector(profile, Some(Partition { index, count })))
            .collect();
        let mut got: Vec<String> = Vec::new();
        let mut errors = 0;
        // An instance with no partition routes plain raw records by the fast path; a partitioned
        // one by the full path: the same routes.
        let mut router = detector(profile, None);
        for event in &events {
            let route = router.route(event, count);
            assert_eq!(route, parts[0].route(event, count), "{event}");
            let buckets = route.buckets;
            spread_over_several += usize::from(buckets.len() > 1);
            // An event with no bucket changes no history: one instance takes it.
            let targets = if buckets.is_empty() { vec![0] } else { buckets };
            for bucket in targets {
                match parts[bucket as usize].process(event) {
                    Ok(alerts) => got.extend(alerts),
                    Err(_) => errors += 1,
                }
            }
        }
        assert!(!expected.is_empty());
        expected.sort();
        got.sort();
        assert_eq!(got.len(), expected.len(), "round {round}, {count} buckets");
        assert_eq!(got, expected, "round {round}, {count} buckets");
        assert_eq!(errors, expected_errors, "each refusal reported once");
    }
    assert!(
        spread_over_several > 100,
        "the streams have events of several buckets ({spread_over_several})"
    );
}

#[test]
fn a_partition_must_exist() {
    let refused = Detector::new(Config {
        partition: Some(Partition { index: 3, count: 3 }),
        ..Config::default()
    });
    assert!(refused.is_err());
    let mut ok = detector(Profile::Default, Some(Partition { index: 2, count: 3 }));
    assert_eq!(ok.route("{}", 3), Default::default());
}
