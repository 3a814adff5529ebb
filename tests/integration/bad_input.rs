//! Hostile and broken input through the component: refused with a typed error, never a trap, and
//! the instance goes on working.

use newterms::{EventError, RuleConfig};
use serde_json::json;

use crate::support::{alerts, direct_invoke, newterms, rule, scratch};

#[test]
fn broken_events_are_typed_errors_and_the_instance_survives() {
    let mut instance = rule(&RuleConfig::default());
    let deep_arrays = "[".repeat(100_000);
    // Holding the needle, so that they are parsed (see the trade-off below).
    let deep_objects = "{\"eventSource\":\"lambda.amazonaws.com\",\"a\":".to_owned()
        + &"{\"a\":".repeat(100_000)
        + "1"
        + &"}".repeat(100_001);
    let glued = r#"{"eventSource":"lambda.amazonaws.com"}{}"#;
    let truncated = direct_invoke("alice", "2024-01-01T00:00:00Z").to_string();
    let truncated = &truncated[..truncated.len() / 2];
    let cases: [(&str, &str); 7] = [
        ("empty", ""),
        ("truncated", truncated),
        ("deep arrays", &deep_arrays),
        ("deep objects", &deep_objects),
        ("not an object", "[{\"eventName\": \"Invoke\"}]"),
        ("number", "12"),
        ("two documents", glued),
    ];
    for (name, text) in cases {
        let outcome = instance.process_event(text).expect("no trap");
        assert!(
            matches!(
                outcome,
                Err(EventError::MalformedJson(_) | EventError::NotAnObject)
            ),
            "{name}: {outcome:?}"
        );
    }
    // The documented trade-off: records that cannot match and look like an object at their edges
    // are not parsed, so these are accepted without an error.
    let deep_quiet = "{\"a\":".repeat(100_000) + "1" + &"}".repeat(100_000);
    for text in ["{}{}", deep_quiet.as_str()] {
        assert_eq!(
            instance.process_event(text).expect("no trap"),
            Ok(Vec::new())
        );
    }
    assert_eq!(
        alerts(
            &mut instance,
            &direct_invoke("alice", "2024-01-01T00:00:00Z")
        )
        .len(),
        1
    );
}

#[test]
fn wrong_types_in_every_field_the_rule_reads() {
    let mut instance = rule(&RuleConfig::default());
    let wrong = [
        json!({"eventSource": 7, "eventName": "Invoke"}),
        json!({"eventSource": "lambda.amazonaws.com", "eventName": ["Invoke"], "userIdentity": 3,
               "eventTime": "2024-01-01T00:00:00Z"}),
        json!({"eventSource": {"a": 1}, "eventName": null, "userIdentity": {"arn": {"x": []}}}),
        json!({"event": "lambda", "user": ["a", {"b": 2}], "@timestamp": {"t": 1}}),
        json!({"eventSource": "lambda.amazonaws.com", "eventName": "Invoke", "eventTime": true,
               "userIdentity": {"arn": "arn:x", "userName": 5, "accountId": 1.5}}),
    ];
    let outcomes: Vec<_> = wrong
        .iter()
        .map(|event| instance.process_event(&event.to_string()).expect("no trap"))
        .collect();
    assert_eq!(
        outcomes[..4],
        [Ok(vec![]), Ok(vec![]), Ok(vec![]), Ok(vec![])]
    );
    // The last one matches the query: its boolean time is refused, not guessed.
    assert_eq!(outcomes[4], Err(EventError::InvalidTime("true".into())));
}

#[test]
fn a_ten_megabyte_event_is_processed() {
    let mut instance = rule(&RuleConfig::default());
    let padding = "x".repeat(10 << 20);
    let mut event = direct_invoke("alice", "2024-01-01T00:00:00Z");
    event["requestParameters"]["payload"] = json!(padding);
    let raised = alerts(&mut instance, &event);
    assert_eq!(raised.len(), 1);
    assert!(raised[0]["event"]["original"].as_str().map_or(0, str::len) > 10 << 20);
}

#[test]
fn the_cli_goes_on_past_huge_and_hostile_lines() {
    let directory = scratch("hostile-cli");
    let input = directory.join("hostile.ndjson");
    let mut text = String::new();
    text.push_str(&"[".repeat(100_000));
    text.push('\n');
    let mut big = direct_invoke("big", "2024-01-01T00:00:00Z");
    big["requestParameters"]["payload"] = json!("y".repeat(10 << 20));
    text.push_str(&big.to_string());
    text.push('\n');
    text.push_str(&direct_invoke("after", "2024-01-01T00:00:00Z").to_string());
    text.push('\n');
    std::fs::write(&input, text).expect("write");
    let run = newterms(&["scan", input.to_str().expect("path")], b"");
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.alerts.len(), 2);
    assert!(
        run.stderr.contains("hostile.ndjson:1: malformed JSON"),
        "{}",
        run.stderr
    );
}
