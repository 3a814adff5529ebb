//! Property tests against a model of the semantics: random streams of events (a few accounts and
//! principals, times jumping back and forth across the window, redeliveries, noise), split at random
//! into runs joined by snapshot and restore, must raise exactly the alerts of the model: a plain map
//! from (account, principal) to the latest time seen.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use newterms_guest::{Config, Detector, Profile};
use serde_json::{Value, json};

mod common;
use common::Rng;

const DAY: i64 = 86_400_000;
const START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

#[derive(Clone, Debug)]
struct Event {
    account: String,
    user: Option<String>,
    arn: String,
    time: i64,
    /// Matches the query (a direct, successful Invoke); otherwise noise the rule must ignore.
    direct: bool,
    text: String,
}

fn event(random: &mut Rng, index: usize, clock: &mut i64) -> Event {
    // Mostly forward, sometimes back, sometimes a jump past the window.
    *clock += match random.below(10) {
        0 => -(random.below(20 * DAY as usize) as i64),
        1 => 15 * DAY + random.below(DAY as usize) as i64,
        _ => random.below(2 * DAY as usize) as i64,
    };
    let account = format!("{:012}", random.below(3));
    let name = format!("user-{}", random.below(6));
    let root = random.below(8) == 0;
    let arn = if root {
        format!("arn:aws:iam::{account}:root")
    } else {
        format!("arn:aws:iam::{account}:user/{name}")
    };
    let kind = random.below(10);
    let mut identity =
        json!({"type": if root { "Root" } else { "IAMUser" }, "arn": arn, "accountId": account});
    if !root {
        identity["userName"] = json!(name);
    }
    if kind == 0 {
        identity["invokedBy"] = json!("s3.amazonaws.com");
    }
    let mut record = json!({
        "eventVersion": "1.08",
        "eventTime": newterms_guest::time::format_iso8601(*clock),
        "eventSource": if kind == 1 { "s3.amazonaws.com" } else { "lambda.amazonaws.com" },
        "eventName": if kind == 2 { "GetFunction20150331v2" } else { "Invoke" },
        "eventID": format!("event-{index}"),
        "userIdentity": identity,
    });
    if kind == 3 {
        record["errorCode"] = json!("AccessDeniedException");
    }
    Event {
        account,
        user: (!root).then_some(name),
        arn,
        time: *clock,
        direct: kind > 3,
        text: record.to_string(),
    }
}

/// What the rule should raise: the event ids of the alerts, in order.
fn model(events: &[Event], profile: Profile) -> Vec<String> {
    let window = if profile == Profile::Default {
        14 * DAY
    } else {
        7 * DAY
    };
    let mut last_seen: HashMap<(String, String), i64> = HashMap::new();
    let mut alerts = Vec::new();
    for (index, event) in events.iter().enumerate() {
        if !event.direct {
            continue;
        }
        let principal = match (&event.user, profile) {
            (Some(user), _) => user.clone(),
            (None, Profile::Default) => event.arn.clone(),
            (None, Profile::Elastic) => continue,
        };
        let key = (event.account.clone(), principal);
        let new = last_seen
            .get(&key)
            .is_none_or(|&seen| event.time - seen > window);
        if new {
            alerts.push(format!("event-{index}"));
        }
        let entry = last_seen.entry(key).or_insert(event.time);
        *entry = (*entry).max(event.time);
    }
    alerts
}

fn rule(profile: Profile) -> Detector {
    Detector::new(Config {
        profile,
        ..Config::default()
    })
    .expect("config")
}

#[test]
fn random_streams_split_at_random_match_the_model() {
    let mut cases = 0;
    for seed in 1..=300_u64 {
        let mut random = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut clock = START;
        let length = 1 + random.below(120);
        let mut events: Vec<Event> = (0..length)
            .map(|index| event(&mut random, index, &mut clock))
            .collect();
        // Redeliveries: copies of earlier events, later in the stream.
        for _ in 0..random.below(10) {
            let copy = events[random.below(events.len())].clone();
            let at = random.below(events.len() + 1);
            events.insert(at, copy);
        }
        // Redelivered copies keep their id: rename ids by position so the model and rule agree.
        for (index, event) in events.iter_mut().enumerate() {
            let mut record: Value = serde_json::from_str(&event.text).expect("json");
            record["eventID"] = json!(format!("event-{index}"));
            event.text = record.to_string();
        }
        for profile in [Profile::Default, Profile::Elastic] {
            let expected = model(&events, profile);
            let mut detector = rule(profile);
            let mut raised = Vec::new();
            for event in &events {
                if random.below(12) == 0 {
                    let snapshot = detector.snapshot();
                    detector = rule(profile);
                    detector.restore(&snapshot).expect("restore");
                }
                for alert in detector.process(&event.text).expect("accepted") {
                    let alert: Value = serde_json::from_str(&alert).expect("alert");
                    raised.push(alert["event"]["id"].as_str().expect("id").to_owned());
                }
            }
            assert_eq!(raised, expected, "seed {seed}, {profile:?}");
            cases += 1;
        }
    }
    assert_eq!(cases, 600);
}
