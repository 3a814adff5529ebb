//! The rule's streaming semantics, natively: every clause of the query, both input shapes, both
//! profiles, the window to the millisecond, history, snapshots and bad input.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use newterms_guest::{Config, Detector, EventError, Exception, Profile, RestoreError};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

/// A direct Lambda invocation by an IAM user, as raw CloudTrail.
fn invoke(user: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventTime": time,
        "eventSource": "lambda.amazonaws.com",
        "eventName": "Invoke",
        "eventID": format!("id-{user}-{time}"),
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15",
        "recipientAccountId": "111122223333",
        "userIdentity": {
            "type": "IAMUser",
            "arn": format!("arn:aws:iam::111122223333:user/{user}"),
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLE",
            "userName": user,
        },
        "requestParameters": {"functionName": "billing", "invocationType": "RequestResponse"},
        "eventType": "AwsApiCall",
        "managementEvent": false,
    })
}

/// The same invocation as the ECS document Elastic's pipeline would index.
fn ecs_invoke(user: &str, time: &str) -> Value {
    json!({
        "@timestamp": time,
        "data_stream": {"dataset": "aws.cloudtrail"},
        "event": {"provider": "lambda.amazonaws.com", "action": "Invoke", "outcome": "success",
                  "id": format!("ecs-{user}-{time}")},
        "cloud": {"account": {"id": "111122223333"}},
        "user": {"name": user},
        "aws": {"cloudtrail": {"user_identity": {
            "arn": format!("arn:aws:iam::111122223333:user/{user}"), "type": "IAMUser"}}},
        "source": {"address": "203.0.113.7", "ip": "203.0.113.7"},
    })
}

fn at(millis: i64) -> String {
    newterms_guest::time::format_iso8601(millis)
}

fn detector(config: Config) -> Detector {
    Detector::new(config).expect("valid configuration")
}

fn alerts(detector: &mut Detector, event: &Value) -> Vec<Value> {
    detector
        .process(&event.to_string())
        .expect("event accepted")
        .iter()
        .map(|alert| serde_json::from_str(alert).expect("alert is JSON"))
        .collect()
}

fn count(detector: &mut Detector, event: &Value) -> usize {
    alerts(detector, event).len()
}

fn set(event: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let parent = event.pointer_mut(parent).expect("parent exists");
    parent
        .as_object_mut()
        .expect("object")
        .insert(key.into(), value);
}

fn remove(event: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    if let Some(parent) = event.pointer_mut(parent).and_then(Value::as_object_mut) {
        parent.remove(key);
    }
}

#[test]
fn first_direct_invocation_alerts_once() {
    let mut rule = detector(Config::default());
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-01T10:00:00Z")),
        1
    );
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-02T10:00:00Z")),
        0
    );
    assert_eq!(count(&mut rule, &invoke("bob", "2024-05-02T10:00:00Z")), 1);
    let stats = rule.stats();
    assert_eq!(
        (stats.events, stats.matched, stats.alerts, stats.terms),
        (3, 3, 2, 2)
    );
}

#[test]
fn each_clause_of_the_query_decides() {
    let base = invoke("alice", "2024-05-01T10:00:00Z");
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change, bool)> = vec![
        ("as is", Box::new(|_| {}), true),
        (
            "other provider",
            Box::new(|e| set(e, "/eventSource", json!("s3.amazonaws.com"))),
            false,
        ),
        (
            "InvokeAsync",
            Box::new(|e| set(e, "/eventName", json!("InvokeAsync"))),
            true,
        ),
        (
            "InvokeWithResponseStream",
            Box::new(|e| set(e, "/eventName", json!("InvokeWithResponseStream"))),
            true,
        ),
        (
            "lowercase invoke",
            Box::new(|e| set(e, "/eventName", json!("invoke"))),
            false,
        ),
        (
            "XInvoke",
            Box::new(|e| set(e, "/eventName", json!("XInvoke"))),
            false,
        ),
        (
            "management event",
            Box::new(|e| set(e, "/eventName", json!("GetFunction20150331v2"))),
            false,
        ),
        (
            "error code",
            Box::new(|e| set(e, "/errorCode", json!("AccessDeniedException"))),
            false,
        ),
        (
            "error message",
            Box::new(|e| set(e, "/errorMessage", json!("denied"))),
            false,
        ),
        (
            "empty error code",
            Box::new(|e| set(e, "/errorCode", json!(""))),
            true,
        ),
        (
            "null error code",
            Box::new(|e| set(e, "/errorCode", Value::Null)),
            true,
        ),
        (
            "invoked by a service",
            Box::new(|e| set(e, "/userIdentity/invokedBy", json!("s3.amazonaws.com"))),
            false,
        ),
        (
            "invokedBy empty",
            Box::new(|e| set(e, "/userIdentity/invokedBy", json!(""))),
            true,
        ),
        (
            "invokedBy null",
            Box::new(|e| set(e, "/userIdentity/invokedBy", Value::Null)),
            true,
        ),
        (
            "no ARN",
            Box::new(|e| remove(e, "/userIdentity/arn")),
            false,
        ),
        (
            "empty ARN",
            Box::new(|e| set(e, "/userIdentity/arn", json!(""))),
            false,
        ),
    ];
    for (name, change, alerts_expected) in cases {
        let mut event = base.clone();
        change(&mut event);
        let mut rule = detector(Config::default());
        assert_eq!(
            count(&mut rule, &event),
            usize::from(alerts_expected),
            "{name}"
        );
    }
}

#[test]
fn ecs_documents_in_every_spelling_alert_like_raw() {
    let nested = ecs_invoke("alice", "2024-05-01T10:00:00Z");
    let dotted = json!({
        "@timestamp": "2024-05-01T10:00:00Z",
        "data_stream.dataset": "aws.cloudtrail",
        "event.provider": "lambda.amazonaws.com",
        "event.action": "Invoke",
        "event.outcome": "success",
        "cloud.account.id": "111122223333",
        "user.name": "alice",
        "aws.cloudtrail.user_identity.arn": "arn:aws:iam::111122223333:user/alice",
    });
    let mixed = json!({
        "@timestamp": "2024-05-01T10:00:00Z",
        "data_stream": {"dataset": "aws.cloudtrail"},
        "event.provider": "lambda.amazonaws.com",
        "event": {"action": "Invoke", "outcome": "success"},
        "cloud.account": {"id": "111122223333"},
        "user": {"name": "alice"},
        "aws.cloudtrail": {"user_identity.arn": "arn:aws:iam::111122223333:user/alice"},
    });
    for document in [&nested, &dotted, &mixed] {
        let mut rule = detector(Config::default());
        let raised = alerts(&mut rule, document);
        assert_eq!(raised.len(), 1, "{document}");
        assert_eq!(
            raised[0]["kibana"]["alert"]["new_terms"],
            json!(["111122223333", "alice"])
        );
        // Raw and ECS of the same principal are the same term.
        assert_eq!(
            count(&mut rule, &invoke("alice", "2024-05-01T11:00:00Z")),
            0
        );
    }

    let mut without_dataset = nested.clone();
    remove(&mut without_dataset, "/data_stream");
    assert_eq!(count(&mut detector(Config::default()), &without_dataset), 0);
    let mut invoked_by = nested.clone();
    set(
        &mut invoked_by,
        "/aws/cloudtrail/user_identity/invoked_by",
        json!("events.amazonaws.com"),
    );
    assert_eq!(count(&mut detector(Config::default()), &invoked_by), 0);
}

#[test]
fn window_is_inclusive_to_the_millisecond() {
    for profile in [Profile::Default, Profile::Elastic] {
        let window = if profile == Profile::Default {
            14 * DAY
        } else {
            7 * DAY
        };
        let mut rule = detector(Config {
            profile,
            ..Config::default()
        });
        let start = 1_714_557_600_000; // 2024-05-01T10:00:00Z
        assert_eq!(count(&mut rule, &invoke("alice", &at(start))), 1);
        // Exactly the window after the last sighting: still known.
        assert_eq!(count(&mut rule, &invoke("alice", &at(start + window))), 0);
        // One millisecond more than the window after that sighting: new again.
        assert_eq!(
            count(&mut rule, &invoke("alice", &at(start + 2 * window + 1))),
            1,
            "{profile:?}"
        );
    }
}

#[test]
fn window_override_applies() {
    let mut rule = detector(Config {
        window_ms: Some(1_000),
        ..Config::default()
    });
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-01T10:00:00.000Z")),
        1
    );
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-01T10:00:01.000Z")),
        0
    );
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-01T10:00:02.001Z")),
        1
    );
}

#[test]
fn out_of_order_and_redelivered_events_raise_nothing_new() {
    let mut rule = detector(Config::default());
    let later = invoke("alice", "2024-05-10T00:00:00Z");
    assert_eq!(count(&mut rule, &later), 1);
    assert_eq!(count(&mut rule, &later), 0, "redelivered");
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-01T00:00:00Z")),
        0,
        "earlier"
    );
    // Known until 14 days after the latest sighting, not the earliest.
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-24T00:00:00Z")),
        0
    );
}

#[test]
fn an_earlier_arriving_later_event_makes_the_term_known() {
    let mut rule = detector(Config::default());
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-06-01T00:00:00Z")),
        1
    );
    // 20 days before the first one: more than the window before it, but t - last_seen < 0.
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-12T00:00:00Z")),
        0
    );
}

#[test]
fn a_principal_quiet_longer_than_the_window_alerts_again() {
    let mut rule = detector(Config::default());
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-01-01T00:00:00Z")),
        1
    );
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-03-01T00:00:00Z")),
        1
    );
}

#[test]
fn root_identity_alerts_only_in_the_default_profile() {
    let mut root = invoke("ignored", "2024-05-01T10:00:00Z");
    set(
        &mut root,
        "/userIdentity",
        json!({
            "type": "Root", "arn": "arn:aws:iam::111122223333:root",
            "accountId": "111122223333", "accessKeyId": "AKIAROOT"
        }),
    );
    let mut default = detector(Config::default());
    let raised = alerts(&mut default, &root);
    assert_eq!(raised.len(), 1);
    assert_eq!(
        raised[0]["kibana"]["alert"]["new_terms"],
        json!(["111122223333", "arn:aws:iam::111122223333:root"])
    );
    let mut elastic = detector(Config {
        profile: Profile::Elastic,
        ..Config::default()
    });
    assert_eq!(count(&mut elastic, &root), 0);
    assert_eq!(elastic.stats().terms, 0, "no term, no history");
}

#[test]
fn assumed_role_sessions_are_one_principal() {
    let session = |name: &str, time: &str| {
        let mut event = invoke("ignored", time);
        set(
            &mut event,
            "/userIdentity",
            json!({
                "type": "AssumedRole",
                "arn": format!("arn:aws:sts::111122223333:assumed-role/deployer/{name}"),
                "accountId": "111122223333",
                "sessionContext": {"sessionIssuer": {
                    "type": "Role", "userName": "deployer",
                    "arn": "arn:aws:iam::111122223333:role/deployer"}}
            }),
        );
        event
    };
    for profile in [Profile::Default, Profile::Elastic] {
        let mut rule = detector(Config {
            profile,
            ..Config::default()
        });
        let raised = alerts(&mut rule, &session("session-1", "2024-05-01T10:00:00Z"));
        assert_eq!(raised[0]["kibana"]["alert"]["new_terms"][1], "deployer");
        assert_eq!(
            count(&mut rule, &session("session-2", "2024-05-01T11:00:00Z")),
            0
        );
    }
}

#[test]
fn account_falls_back_to_the_recipient_account() {
    let mut event = invoke("alice", "2024-05-01T10:00:00Z");
    remove(&mut event, "/userIdentity/accountId");
    set(&mut event, "/recipientAccountId", json!("444455556666"));
    let raised = alerts(&mut detector(Config::default()), &event);
    assert_eq!(raised[0]["kibana"]["alert"]["new_terms"][0], "444455556666");

    remove(&mut event, "/recipientAccountId");
    assert_eq!(
        count(&mut detector(Config::default()), &event),
        0,
        "no account, no term"
    );
}

#[test]
fn array_values_give_one_alert_per_new_combination() {
    let mut document = ecs_invoke("alice", "2024-05-01T10:00:00Z");
    set(
        &mut document,
        "/user/name",
        json!(["alice", "bob", "alice", null]),
    );
    set(&mut document, "/cloud/account/id", json!(["1", "2"]));
    let mut rule = detector(Config::default());
    let raised = alerts(&mut rule, &document);
    let mut terms: Vec<Value> = raised
        .iter()
        .map(|alert| alert["kibana"]["alert"]["new_terms"].clone())
        .collect();
    terms.sort_by_key(Value::to_string);
    assert_eq!(
        terms,
        [
            json!(["1", "alice"]),
            json!(["1", "bob"]),
            json!(["2", "alice"]),
            json!(["2", "bob"])
        ]
    );

    set(&mut document, "/user/name", json!(["alice", "carol"]));
    let raised = alerts(&mut rule, &document);
    assert_eq!(raised.len(), 2, "only the combinations with carol are new");

    let uuids: std::collections::HashSet<_> = raised
        .iter()
        .map(|alert| alert["kibana"]["alert"]["uuid"].clone())
        .collect();
    assert_eq!(uuids.len(), 2, "one id per term");
}

#[test]
fn values_compare_exactly() {
    let mut rule = detector(Config::default());
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-01T10:00:00Z")),
        1
    );
    assert_eq!(
        count(&mut rule, &invoke("Alice", "2024-05-01T10:00:00Z")),
        1
    );
    assert_eq!(
        count(&mut rule, &invoke("alice ", "2024-05-01T10:00:00Z")),
        1
    );
}

#[test]
fn exceptions_neither_alert_nor_count() {
    let config = Config {
        exceptions: vec![Exception {
            field: "aws.cloudtrail.user_identity.arn".into(),
            patterns: vec!["arn:aws:iam::111122223333:user/ci-*".into()],
        }],
        ..Config::default()
    };
    let mut rule = detector(config);
    assert_eq!(
        count(&mut rule, &invoke("ci-runner", "2024-05-01T10:00:00Z")),
        0
    );
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-01T10:00:00Z")),
        1
    );
    let stats = rule.stats();
    assert_eq!((stats.matched, stats.excepted, stats.terms), (2, 1, 1));

    let invalid = Config {
        exceptions: vec![Exception {
            field: "user.name".into(),
            patterns: vec![],
        }],
        ..Config::default()
    };
    assert!(Detector::new(invalid).is_err());
}

#[test]
fn learn_mode_builds_history_without_alerts() {
    let mut learner = detector(Config {
        learn: true,
        ..Config::default()
    });
    assert_eq!(
        count(&mut learner, &invoke("alice", "2024-05-01T10:00:00Z")),
        0
    );
    let mut live = detector(Config::default());
    live.restore(&learner.snapshot()).expect("restore");
    assert_eq!(
        count(&mut live, &invoke("alice", "2024-05-02T10:00:00Z")),
        0
    );
    assert_eq!(count(&mut live, &invoke("bob", "2024-05-02T10:00:00Z")), 1);
}

#[test]
fn split_runs_raise_the_alerts_of_one_run() {
    let users = [
        "alice", "bob", "carol", "alice", "dave", "bob", "erin", "alice",
    ];
    let events: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(index, user)| invoke(user, &at(1_714_557_600_000 + index as i64 * 9 * DAY)))
        .collect();
    let run = |rule: &mut Detector, events: &[Value]| -> Vec<String> {
        events
            .iter()
            .flat_map(|event| rule.process(&event.to_string()).expect("accepted"))
            .collect()
    };
    let whole = run(&mut detector(Config::default()), &events);
    for split in 0..=events.len() {
        let mut first = detector(Config::default());
        let mut alerts = run(&mut first, &events[..split]);
        let mut second = detector(Config::default());
        second.restore(&first.snapshot()).expect("restore");
        alerts.extend(run(&mut second, &events[split..]));
        assert_eq!(alerts, whole, "split at {split}");
    }
}

#[test]
fn snapshots_refuse_another_profile_and_damage() {
    let mut rule = detector(Config::default());
    count(&mut rule, &invoke("alice", "2024-05-01T10:00:00Z"));
    let snapshot = rule.snapshot();
    let mut elastic = detector(Config {
        profile: Profile::Elastic,
        ..Config::default()
    });
    assert!(matches!(
        elastic.restore(&snapshot),
        Err(RestoreError::Incompatible(_))
    ));
    let mut fresh = detector(Config::default());
    assert_eq!(
        fresh.restore(&snapshot[..snapshot.len() - 1]),
        Err(RestoreError::Truncated)
    );
    assert_eq!(fresh.restore(b""), Err(RestoreError::BadMagic));
    assert_eq!(fresh.stats().terms, 0, "a refused snapshot changes nothing");
}

#[test]
fn history_is_bounded_and_evictions_counted() {
    let mut rule = detector(Config {
        capacity: Some(2),
        ..Config::default()
    });
    for user in ["a", "b", "c"] {
        assert_eq!(count(&mut rule, &invoke(user, "2024-05-01T10:00:00Z")), 1);
    }
    let stats = rule.stats();
    assert_eq!((stats.terms, stats.evictions), (2, 1));
    // "a" was evicted: it alerts again, and the restored history keeps the count.
    assert_eq!(count(&mut rule, &invoke("a", "2024-05-01T10:00:01Z")), 1);
    let mut restored = detector(Config {
        capacity: Some(2),
        ..Config::default()
    });
    restored.restore(&rule.snapshot()).expect("restore");
    assert_eq!(restored.stats().evictions, 2);
    assert!(
        Detector::new(Config {
            capacity: Some(0),
            ..Config::default()
        })
        .is_err()
    );
}

#[test]
fn time_is_required_only_of_matching_events() {
    let mut rule = detector(Config::default());
    let mut no_time = invoke("alice", "x");
    remove(&mut no_time, "/eventTime");
    assert_eq!(
        rule.process(&no_time.to_string()),
        Err(EventError::MissingTime)
    );
    let mut bad_time = invoke("alice", "yesterday");
    assert_eq!(
        rule.process(&bad_time.to_string()),
        Err(EventError::InvalidTime("yesterday".into()))
    );
    set(&mut bad_time, "/eventSource", json!("s3.amazonaws.com"));
    assert_eq!(
        rule.process(&bad_time.to_string()),
        Ok(vec![]),
        "not matching: time irrelevant"
    );
    assert_eq!(rule.stats().terms, 0, "refused events change nothing");
    assert_eq!(
        count(&mut rule, &invoke("alice", "2024-05-01T10:00:00+02:00")),
        1
    );

    let mut epoch = ecs_invoke("bob", "x");
    set(&mut epoch, "/@timestamp", json!(1_714_557_600_000_i64));
    assert_eq!(count(&mut rule, &epoch), 1);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut rule = detector(Config::default());
    let deep = "[".repeat(100_000);
    let deep_object = "{\"a\":".repeat(100_000);
    let cases = [
        "",
        "{",
        "{\"eventName\": \"Invoke\"",
        "null",
        "[]",
        "42",
        "\"Invoke\"",
        deep.as_str(),
        deep_object.as_str(),
        "{\"eventSource\":\"lambda.amazonaws.com\"}{\"b\":2}",
    ];
    for text in cases {
        let outcome = rule.process(text);
        assert!(
            matches!(
                outcome,
                Err(EventError::MalformedJson(_) | EventError::NotAnObject)
            ),
            "{:.40}: {outcome:?}",
            text
        );
    }
    // Wrong types in every field the rule reads.
    let wrong = json!({
        "eventTime": 5, "eventSource": ["lambda.amazonaws.com"], "eventName": {"x": 1},
        "userIdentity": "root", "recipientAccountId": [1, 2], "requestParameters": [[[]]],
        "errorCode": {}, "sourceIPAddress": false
    });
    assert_eq!(rule.process(&wrong.to_string()), Ok(vec![]));
    assert_eq!(rule.stats().errors, cases.len() as u64);
    // The documented trade-off: glued documents that cannot match are object-shaped at the edges,
    // so they are skipped without a parse; the exact path reports them.
    let glued = "{\"a\":1}{\"b\":2}";
    assert_eq!(rule.process(glued), Ok(vec![]));
    assert!(matches!(
        rule.process_exact(glued),
        Err(EventError::MalformedJson(_))
    ));
}

#[test]
fn too_many_term_combinations_are_refused() {
    let mut document = ecs_invoke("alice", "2024-05-01T10:00:00Z");
    let names: Vec<String> = (0..2_000).map(|index| format!("user-{index}")).collect();
    set(&mut document, "/user/name", json!(names));
    let mut rule = detector(Config::default());
    assert_eq!(
        rule.process(&document.to_string()),
        Err(EventError::TooManyTerms(2_000))
    );
    assert_eq!(rule.stats().terms, 0);
}

#[test]
fn alerts_have_the_elastic_security_shape() {
    let mut rule = detector(Config::default());
    let event = invoke("alice", "2024-05-01T10:00:00.123456Z");
    let text = event.to_string();
    let raised = rule.process(&text).expect("accepted");
    let alert: Value = serde_json::from_str(&raised[0]).expect("JSON");
    let kibana = &alert["kibana"]["alert"];
    assert_eq!(alert["event"]["kind"], "signal");
    assert_eq!(alert["event"]["id"], "id-alice-2024-05-01T10:00:00.123456Z");
    assert_eq!(alert["event"]["original"], text.as_str());
    assert_eq!(alert["event"]["provider"], "lambda.amazonaws.com");
    assert_eq!(alert["event"]["action"], "Invoke");
    assert_eq!(alert["event"]["outcome"], "success");
    assert_eq!(alert["@timestamp"], "2024-05-01T10:00:00.123Z");
    assert_eq!(alert["user"]["name"], "alice");
    assert_eq!(alert["cloud"]["account"]["id"], "111122223333");
    assert_eq!(alert["cloud"]["region"], "us-east-1");
    assert_eq!(alert["source"]["ip"], "203.0.113.7");
    assert_eq!(alert["user_agent"]["original"], "aws-cli/2.15");
    assert_eq!(
        alert["aws"]["cloudtrail"]["request_parameters"],
        "{functionName=billing, invocationType=RequestResponse}"
    );
    assert_eq!(
        alert["aws"]["cloudtrail"]["user_identity"]["access_key_id"],
        "AKIAEXAMPLE"
    );
    assert_eq!(kibana["original_time"], "2024-05-01T10:00:00.123Z");
    assert_eq!(kibana["new_terms"], json!(["111122223333", "alice"]));
    assert_eq!(
        kibana["rule"]["name"],
        "AWS Lambda Function Invoked by an Unusual Principal"
    );
    assert_eq!(
        kibana["rule"]["rule_id"],
        "07cd35a6-c267-4394-a782-6a9428aea9d3"
    );
    assert_eq!(kibana["rule"]["type"], "new_terms");
    assert_eq!(kibana["rule"]["severity"], "medium");
    assert_eq!(kibana["rule"]["risk_score"], 47);
    assert_eq!(kibana["rule"]["threat"][0]["tactic"]["id"], "TA0002");
    assert_eq!(kibana["rule"]["threat"][0]["technique"][0]["id"], "T1648");
    assert_eq!(kibana["rule"]["tags"].as_array().map(Vec::len), Some(7));
    assert_eq!(kibana["severity"], "medium");
    assert_eq!(kibana["risk_score"], 47);
    assert_eq!(kibana["status"], "active");
    assert_eq!(kibana["workflow_status"], "open");
    assert_eq!(
        kibana["reason"],
        "event with source 203.0.113.7 by alice created medium alert \
         AWS Lambda Function Invoked by an Unusual Principal."
    );
    // Deterministic: the same event through a fresh rule gets the same id.
    let again: Value =
        serde_json::from_str(&detector(Config::default()).process(&text).expect("ok")[0])
            .expect("JSON");
    assert_eq!(again["kibana"]["alert"]["uuid"], kibana["uuid"]);
}

#[test]
fn a_snapshot_in_pieces_ends_when_the_history_changes() {
    let mut rule = detector(Config::default());
    for user in ["alice", "bob", "carol"] {
        count(&mut rule, &invoke(user, "2024-03-01T00:00:00Z"));
    }
    let whole = rule.snapshot();
    let length = rule.snapshot_begin();
    assert_eq!(length, whole.len() as u64);
    let first = rule.snapshot_read(10);
    assert_eq!(first, whole[..10]);
    // A known principal again: the history's order changes under the snapshot.
    count(&mut rule, &invoke("alice", "2024-03-02T00:00:00Z"));
    assert_eq!(rule.snapshot_read(1 << 20), Vec::<u8>::new());

    // Begun again, it reads whole, and a restore from pieces gives the same history.
    let whole = rule.snapshot();
    rule.snapshot_begin();
    let mut pieces = Vec::new();
    loop {
        let piece = rule.snapshot_read(7);
        if piece.is_empty() {
            break;
        }
        pieces.push(piece);
    }
    assert_eq!(pieces.concat(), whole);
    let mut restored = detector(Config::default());
    restored.restore_begin(whole.len() as u64);
    for piece in &pieces {
        restored.restore_write(piece).expect("piece");
    }
    restored.restore_end().expect("restore");
    assert_eq!(restored.snapshot(), whole);
    // Nothing left begun.
    assert!(restored.restore_end().is_err());
}

#[test]
fn a_snapshot_in_pieces_survives_what_leaves_the_history_alone_and_ends_at_a_restore() {
    let mut rule = detector(Config::default());
    for user in ["alice", "bob"] {
        count(&mut rule, &invoke(user, "2024-03-01T00:00:00Z"));
    }
    let whole = rule.snapshot();
    rule.snapshot_begin();
    let first = rule.snapshot_read(10);
    // Not a Lambda invocation: the history stays as it was, and so does the snapshot.
    rule.process(r#"{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}"#)
        .expect("ok");
    let rest = rule.snapshot_read(1 << 20);
    assert_eq!([first, rest].concat(), whole);

    rule.snapshot_begin();
    assert_eq!(rule.snapshot_read(10), whole[..10]);
    rule.restore(&whole).expect("restore");
    assert_eq!(rule.snapshot_read(1 << 20), Vec::<u8>::new());
}
