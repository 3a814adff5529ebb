//! The rule's semantics through the real component in wasmtime.

use newterms::{Exception, Profile, RuleConfig};
use serde_json::{Value, json};

use crate::support::{alerts, direct_invoke, rule, terms, with, without};

const T0: &str = "2024-03-01T08:00:00Z";

fn alert_count(config: &RuleConfig, event: &Value) -> usize {
    alerts(&mut rule(config), event).len()
}

#[test]
fn each_query_clause_true_and_false() {
    let base = direct_invoke("alice", T0);
    let default = RuleConfig::default();
    let cases = [
        ("all clauses hold", base.clone(), 1),
        (
            "event.provider differs",
            with(base.clone(), "/eventSource", json!("sts.amazonaws.com")),
            0,
        ),
        (
            "event.action InvokeAsync",
            with(base.clone(), "/eventName", json!("InvokeAsync")),
            1,
        ),
        (
            "event.action Invoke only as prefix",
            with(base.clone(), "/eventName", json!("ListInvokes")),
            0,
        ),
        (
            "event.action case differs",
            with(base.clone(), "/eventName", json!("INVOKE")),
            0,
        ),
        (
            "event.outcome failure",
            with(
                base.clone(),
                "/errorCode",
                json!("ResourceNotFoundException"),
            ),
            0,
        ),
        (
            "invoked_by exists",
            with(
                base.clone(),
                "/userIdentity/invokedBy",
                json!("apigateway.amazonaws.com"),
            ),
            0,
        ),
        (
            "invoked_by blank",
            with(base.clone(), "/userIdentity/invokedBy", json!("")),
            1,
        ),
        ("arn missing", without(base.clone(), "/userIdentity/arn"), 0),
    ];
    for (name, event, expected) in cases {
        assert_eq!(alert_count(&default, &event), expected, "{name}");
    }

    // The dataset clause, on ECS input where it is a real field.
    let ecs = json!({
        "@timestamp": T0, "data_stream": {"dataset": "aws.cloudtrail"},
        "event": {"provider": "lambda.amazonaws.com", "action": "Invoke", "outcome": "success", "id": "e"},
        "cloud": {"account": {"id": "1"}}, "user": {"name": "alice"},
        "aws": {"cloudtrail": {"user_identity": {"arn": "arn:aws:iam::1:user/alice"}}}
    });
    assert_eq!(alert_count(&default, &ecs), 1);
    assert_eq!(
        alert_count(
            &default,
            &with(ecs.clone(), "/data_stream/dataset", json!("aws.guardduty"))
        ),
        0
    );
    assert_eq!(
        alert_count(&default, &with(ecs, "/event/outcome", json!("failure"))),
        0
    );
}

#[test]
fn every_row_of_the_mapping_table_reaches_the_alert() {
    let event = with(
        direct_invoke("alice", "2024-03-01T08:00:00.250+01:00"),
        "/requestParameters",
        json!({"functionName": "payments-export", "qualifier": "live", "payload": ""}),
    );
    let alert = alerts(&mut rule(&RuleConfig::default()), &event).remove(0);
    let field = |pointer: &str| alert.pointer(pointer).cloned().unwrap_or(Value::Null);
    let rows = [
        ("/@timestamp", json!("2024-03-01T07:00:00.250Z")),
        ("/event/provider", json!("lambda.amazonaws.com")),
        ("/event/action", json!("Invoke")),
        ("/event/outcome", json!("success")),
        ("/event/id", json!("alice@2024-03-01T08:00:00.250+01:00")),
        ("/user/name", json!("alice")),
        ("/cloud/account/id", json!("123456789012")),
        ("/cloud/region", json!("eu-west-1")),
        (
            "/aws/cloudtrail/user_identity/arn",
            json!("arn:aws:iam::123456789012:user/alice"),
        ),
        ("/aws/cloudtrail/user_identity/type", json!("IAMUser")),
        (
            "/aws/cloudtrail/user_identity/access_key_id",
            json!("AKIAIOSFODNN7EXAMPLE"),
        ),
        (
            "/aws/cloudtrail/recipient_account_id",
            json!("123456789012"),
        ),
        ("/source/address", json!("198.51.100.20")),
        ("/source/ip", json!("198.51.100.20")),
        ("/user_agent/original", json!("Boto3/1.34.0")),
        (
            "/aws/cloudtrail/request_parameters",
            json!("{functionName=payments-export, qualifier=live}"),
        ),
        ("/data_stream/dataset", json!("aws.cloudtrail")),
        ("/event/original", json!(event.to_string())),
        ("/event/kind", json!("signal")),
        (
            "/kibana/alert/original_time",
            json!("2024-03-01T07:00:00.250Z"),
        ),
    ];
    for (pointer, expected) in rows {
        assert_eq!(field(pointer), expected, "{pointer}");
    }
    // invoked_by maps too: it is what the query excludes on.
    let service = with(
        direct_invoke("alice", T0),
        "/userIdentity/invokedBy",
        json!("events.amazonaws.com"),
    );
    assert_eq!(alert_count(&RuleConfig::default(), &service), 0);
    // A failure maps to event.outcome failure whichever error field is set.
    let failed = with(
        direct_invoke("alice", T0),
        "/errorMessage",
        json!("Rate exceeded"),
    );
    assert_eq!(alert_count(&RuleConfig::default(), &failed), 0);
}

#[test]
fn profiles_differ_on_window_and_root() {
    let root = with(
        direct_invoke("x", T0),
        "/userIdentity",
        json!({
            "type": "Root", "principalId": "123456789012",
            "arn": "arn:aws:iam::123456789012:root", "accountId": "123456789012"
        }),
    );
    let default = alerts(&mut rule(&RuleConfig::default()), &root);
    assert_eq!(
        terms(&default[0]),
        json!(["123456789012", "arn:aws:iam::123456789012:root"])
    );
    let elastic = RuleConfig {
        profile: Profile::Elastic,
        ..RuleConfig::default()
    };
    assert_eq!(alert_count(&elastic, &root), 0);

    // 10 days later: known under the 14-day window, new under the 7-day one.
    for (config, expected) in [(RuleConfig::default(), 0), (elastic, 1)] {
        let mut instance = rule(&config);
        assert_eq!(alerts(&mut instance, &direct_invoke("alice", T0)).len(), 1);
        let later = direct_invoke("alice", "2024-03-11T08:00:00Z");
        assert_eq!(
            alerts(&mut instance, &later).len(),
            expected,
            "{:?}",
            config.profile
        );
    }
}

#[test]
fn window_boundaries_to_the_millisecond() {
    let mut instance = rule(&RuleConfig::default());
    assert_eq!(
        alerts(
            &mut instance,
            &direct_invoke("alice", "2024-03-01T08:00:00.000Z")
        )
        .len(),
        1
    );
    // Exactly 14 days after: known.
    assert_eq!(
        alerts(
            &mut instance,
            &direct_invoke("alice", "2024-03-15T08:00:00.000Z")
        )
        .len(),
        0
    );
    // 14 days and 1 ms after the latest sighting: new.
    assert_eq!(
        alerts(
            &mut instance,
            &direct_invoke("alice", "2024-03-29T08:00:00.001Z")
        )
        .len(),
        1
    );
}

#[test]
fn out_of_order_and_redelivered_events() {
    let mut instance = rule(&RuleConfig::default());
    let event = direct_invoke("alice", "2024-03-20T00:00:00Z");
    let first = alerts(&mut instance, &event);
    assert_eq!(first.len(), 1);
    assert_eq!(
        alerts(&mut instance, &event).len(),
        0,
        "redelivery raises nothing"
    );
    assert_eq!(
        alerts(
            &mut instance,
            &direct_invoke("alice", "2024-03-01T00:00:00Z")
        )
        .len(),
        0
    );
    // A second rule that sees the same event raises the same alert id: consumers can deduplicate.
    let again = alerts(&mut rule(&RuleConfig::default()), &event);
    assert_eq!(
        again[0]["kibana"]["alert"]["uuid"],
        first[0]["kibana"]["alert"]["uuid"]
    );
}

#[test]
fn arrays_and_missing_fields() {
    let ecs = json!({
        "@timestamp": T0, "data_stream": {"dataset": "aws.cloudtrail"},
        "event": {"provider": "lambda.amazonaws.com", "action": ["Describe", "Invoke"], "outcome": "success"},
        "cloud": {"account": {"id": "1"}}, "user": {"name": ["alice", "bob"]},
        "aws": {"cloudtrail": {"user_identity": {"arn": ["arn:aws:iam::1:user/alice"]}}}
    });
    let raised = alerts(&mut rule(&RuleConfig::default()), &ecs);
    let mut found: Vec<Value> = raised.iter().map(terms).collect();
    found.sort_by_key(Value::to_string);
    assert_eq!(found, [json!(["1", "alice"]), json!(["1", "bob"])]);

    let elastic = RuleConfig {
        profile: Profile::Elastic,
        ..RuleConfig::default()
    };
    let no_user = without(direct_invoke("alice", T0), "/userIdentity/userName");
    assert_eq!(alert_count(&elastic, &no_user), 0, "no user.name, no term");
    let mut instance = rule(&RuleConfig::default());
    assert_eq!(
        terms(&alerts(&mut instance, &no_user)[0]),
        json!(["123456789012", "arn:aws:iam::123456789012:user/alice"]),
        "the default profile falls back to the ARN"
    );
}

#[test]
fn assumed_role_sessions_share_a_term() {
    let session = |name: &str| {
        with(
            direct_invoke("x", T0),
            "/userIdentity",
            json!({
                "type": "AssumedRole",
                "arn": format!("arn:aws:sts::123456789012:assumed-role/ops/{name}"),
                "accountId": "123456789012",
                "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "ops"}}
            }),
        )
    };
    let mut instance = rule(&RuleConfig::default());
    assert_eq!(
        terms(&alerts(&mut instance, &session("a"))[0]),
        json!(["123456789012", "ops"])
    );
    assert_eq!(alerts(&mut instance, &session("b")).len(), 0);
}

#[test]
fn exceptions_drop_events_before_history() {
    let config = RuleConfig {
        exceptions: vec![
            Exception {
                field: "aws.cloudtrail.user_identity.arn".into(),
                patterns: vec!["arn:aws:iam::123456789012:user/deploy-?".into()],
            },
            Exception {
                field: "user_agent.original".into(),
                patterns: vec!["Terraform/*".into()],
            },
        ],
        ..RuleConfig::default()
    };
    let mut instance = rule(&config);
    assert_eq!(
        alerts(&mut instance, &direct_invoke("deploy-1", T0)).len(),
        0
    );
    assert_eq!(
        alerts(&mut instance, &direct_invoke("deploy-12", T0)).len(),
        1
    );
    let terraform = with(
        direct_invoke("carol", T0),
        "/userAgent",
        json!("Terraform/1.7"),
    );
    assert_eq!(alerts(&mut instance, &terraform).len(), 0);
    let stats = instance.stats().expect("stats");
    assert_eq!((stats.excepted, stats.terms), (2, 1));
}

#[test]
fn learn_mode_then_live() {
    let mut learner = rule(&RuleConfig {
        learn: true,
        ..RuleConfig::default()
    });
    assert_eq!(alerts(&mut learner, &direct_invoke("alice", T0)).len(), 0);
    let snapshot = learner.snapshot().expect("snapshot");
    let mut live = rule(&RuleConfig::default());
    live.restore(&snapshot).expect("restore");
    assert_eq!(
        alerts(&mut live, &direct_invoke("alice", "2024-03-02T00:00:00Z")).len(),
        0
    );
    assert_eq!(
        alerts(&mut live, &direct_invoke("bob", "2024-03-02T00:00:00Z")).len(),
        1
    );
}

#[test]
fn batches_equal_single_events() {
    let sightings = [
        ("alice", "2024-03-01"),
        ("bob", "2024-03-05"),
        ("alice", "2024-03-20"), // 19 days later: new again
        ("carol", "2024-03-21"),
        ("carol", "2024-03-25"),
    ];
    let events: Vec<Value> = sightings
        .iter()
        .map(|(user, day)| direct_invoke(user, &format!("{day}T00:00:00Z")))
        .collect();
    let texts: Vec<String> = events.iter().map(Value::to_string).collect();
    let mut one_by_one = rule(&RuleConfig::default());
    let singles: Vec<_> = texts
        .iter()
        .map(|text| one_by_one.process_event(text).expect("no trap"))
        .collect();
    let batched = rule(&RuleConfig::default())
        .process_batch(&texts)
        .expect("no trap");
    assert_eq!(singles, batched);
    assert_eq!(
        batched
            .iter()
            .map(|outcome| outcome.as_ref().map(Vec::len))
            .collect::<Vec<_>>(),
        [Ok(1), Ok(1), Ok(1), Ok(1), Ok(0)]
    );
}
