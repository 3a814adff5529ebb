//! Raw CloudTrail records to ECS, as Elastic's `aws.cloudtrail` ingest pipeline maps the fields this
//! rule reads (see the mapping table in the rule's reference).

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::fields::{self, is_blank, without_blanks};
use crate::time;

/// Whether a JSON object is a raw CloudTrail record rather than an ECS document.
///
/// CloudTrail's own keys are camelCase and ECS has none of them, so one of them decides.
pub fn is_raw_record(document: &Map<String, Value>) -> bool {
    [
        "eventVersion",
        "eventSource",
        "eventName",
        "eventTime",
        "userIdentity",
    ]
    .iter()
    .any(|key| document.contains_key(*key))
}

/// ECS fields whose values [`to_ecs`] copies from the raw record as they are (blank values aside), so
/// that a value of one of them is spelled in the raw record's text. Constants the mapping adds
/// (`data_stream.dataset`, `event.kind`), computed fields (`event.outcome`) and rewritten ones
/// (`@timestamp`, `aws.cloudtrail.request_parameters`, `source.ip`) are not here.
const VERBATIM_FIELDS: &[&str] = &[
    "event.provider",
    "event.action",
    "event.id",
    "cloud.region",
    "aws.cloudtrail.user_identity.arn",
    "aws.cloudtrail.user_identity.type",
    "aws.cloudtrail.user_identity.access_key_id",
    "aws.cloudtrail.user_identity.invoked_by",
    "aws.cloudtrail.recipient_account_id",
    "source.address",
    "user_agent.original",
    "user.name",
    "cloud.account.id",
];

/// Whether [`to_ecs`] copies the values of the ECS field `field` verbatim from the raw record.
pub const fn copies_verbatim(field: &str) -> bool {
    let mut index = 0;
    while index < VERBATIM_FIELDS.len() {
        if same_bytes(VERBATIM_FIELDS[index].as_bytes(), field.as_bytes()) {
            return true;
        }
        index += 1;
    }
    false
}

/// `a == b`, in a `const fn`.
const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut index = 0;
    while index < a.len() {
        if a[index] != b[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// The ECS document the ingest pipeline would index for `record` (the fields of the mapping table).
pub fn to_ecs(record: &Map<String, Value>) -> Value {
    let mut ecs = Map::new();
    let mut copy = |ecs_field: &str, raw_path: &[&str]| {
        if let Some(value) = raw(record, raw_path) {
            fields::set(&mut ecs, ecs_field, without_blanks(value));
        }
    };

    copy("event.provider", &["eventSource"]);
    copy("event.action", &["eventName"]);
    copy("event.id", &["eventID"]);
    copy("cloud.region", &["awsRegion"]);
    copy("aws.cloudtrail.user_identity.arn", &["userIdentity", "arn"]);
    copy(
        "aws.cloudtrail.user_identity.type",
        &["userIdentity", "type"],
    );
    copy(
        "aws.cloudtrail.user_identity.access_key_id",
        &["userIdentity", "accessKeyId"],
    );
    copy(
        "aws.cloudtrail.user_identity.invoked_by",
        &["userIdentity", "invokedBy"],
    );
    copy(
        "aws.cloudtrail.recipient_account_id",
        &["recipientAccountId"],
    );
    copy("source.address", &["sourceIPAddress"]);
    copy("user_agent.original", &["userAgent"]);

    let user_name = raw(record, &["userIdentity", "userName"]).or_else(|| {
        raw(
            record,
            &[
                "userIdentity",
                "sessionContext",
                "sessionIssuer",
                "userName",
            ],
        )
    });
    if let Some(name) = user_name {
        fields::set(&mut ecs, "user.name", without_blanks(name));
    }

    let account = raw(record, &["userIdentity", "accountId"])
        .or_else(|| raw(record, &["recipientAccountId"]));
    if let Some(account) = account {
        fields::set(&mut ecs, "cloud.account.id", without_blanks(account));
    }

    if let Some(Value::String(address)) = raw(record, &["sourceIPAddress"])
        && address.parse::<IpAddr>().is_ok()
    {
        fields::set(&mut ecs, "source.ip", Value::String(address.clone()));
    }

    if let Some(parameters) = raw(record, &["requestParameters"]) {
        let mut rendered = String::new();
        render_java_style(&without_blanks(parameters), &mut rendered);
        fields::set(
            &mut ecs,
            "aws.cloudtrail.request_parameters",
            Value::String(rendered),
        );
    }

    // The pipeline's date processor rewrites the time; a value it cannot parse is kept as it was, so
    // that the rule reports it instead of guessing.
    if let Some(event_time) = raw(record, &["eventTime"]) {
        let normalized = match event_time {
            Value::String(text) => time::parse_iso8601(text).map_or_else(
                || event_time.clone(),
                |millis| time::format_iso8601(millis).into(),
            ),
            other => other.clone(),
        };
        fields::set(&mut ecs, "@timestamp", normalized);
    }

    let failed = raw(record, &["errorCode"]).is_some() || raw(record, &["errorMessage"]).is_some();
    fields::set(
        &mut ecs,
        "event.outcome",
        Value::from(if failed { "failure" } else { "success" }),
    );
    fields::set(&mut ecs, "event.kind", Value::from("event"));
    fields::set(
        &mut ecs,
        "data_stream.dataset",
        Value::from("aws.cloudtrail"),
    );
    Value::Object(ecs)
}

/// The value at `path` in nested objects, unless the pipeline would drop it.
fn raw<'a>(record: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut object = record;
    for key in parents {
        object = object.get(*key)?.as_object()?;
    }
    object.get(*last).filter(|value| !is_blank(value))
}

/// Renders a value the way the pipeline's script stringifies `requestParameters`: Java's
/// `Map.toString()` (`{key=value, …}`) and `List.toString()` (`[a, b]`). Keys come in the record's
/// order as parsed (sorted), not in Java's hash order.
fn render_java_style(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (index, (key, child)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                render_java_style(child, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                render_java_style(item, out);
            }
            out.push(']');
        }
        Value::String(text) => out.push_str(text),
        Value::Null => out.push_str("null"),
        Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn maps_the_rule_fields() {
        let record = map(json!({
            "eventVersion": "1.08",
            "eventTime": "2024-09-11T09:29:33Z",
            "eventSource": "lambda.amazonaws.com",
            "eventName": "Invoke",
            "eventID": "e-1",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2",
            "recipientAccountId": "111122223333",
            "userIdentity": {
                "type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
                "accountId": "111122223333", "accessKeyId": "AKIA1", "userName": "alice"
            },
            "requestParameters": {"functionName": "f", "qualifier": "", "payload": {"a": [1, "b"]}},
        }));
        assert_eq!(
            to_ecs(&record),
            json!({
                "@timestamp": "2024-09-11T09:29:33.000Z",
                "event": {"provider": "lambda.amazonaws.com", "action": "Invoke", "id": "e-1",
                          "outcome": "success", "kind": "event"},
                "cloud": {"region": "us-east-1", "account": {"id": "111122223333"}},
                "aws": {"cloudtrail": {
                    "user_identity": {"arn": "arn:aws:iam::111122223333:user/alice", "type": "IAMUser",
                                      "access_key_id": "AKIA1"},
                    "recipient_account_id": "111122223333",
                    "request_parameters": "{functionName=f, payload={a=[1, b]}}",
                }},
                "source": {"address": "203.0.113.7", "ip": "203.0.113.7"},
                "user_agent": {"original": "aws-cli/2"},
                "user": {"name": "alice"},
                "data_stream": {"dataset": "aws.cloudtrail"},
            })
        );
    }

    #[test]
    fn falls_back_for_assumed_roles_and_missing_accounts() {
        let record = map(json!({
            "eventName": "Invoke",
            "recipientAccountId": "999",
            "sourceIPAddress": "states.amazonaws.com",
            "userIdentity": {"type": "AssumedRole", "accountId": "", "userName": null,
                "sessionContext": {"sessionIssuer": {"userName": "deploy-role"}}},
        }));
        let ecs = to_ecs(&record);
        assert_eq!(ecs["user"]["name"], "deploy-role");
        assert_eq!(ecs["cloud"]["account"]["id"], "999");
        assert_eq!(ecs["source"]["address"], "states.amazonaws.com");
        assert!(ecs["source"].get("ip").is_none());
    }

    #[test]
    fn any_error_field_is_a_failure() {
        for error in [
            json!({"errorCode": "AccessDenied"}),
            json!({"errorMessage": "no"}),
        ] {
            let mut record = map(error);
            record.insert("eventName".into(), "Invoke".into());
            assert_eq!(to_ecs(&record)["event"]["outcome"], "failure");
        }
        let record = map(json!({"eventName": "Invoke", "errorCode": "", "errorMessage": null}));
        assert_eq!(to_ecs(&record)["event"]["outcome"], "success");
    }

    #[test]
    fn tells_raw_from_ecs() {
        assert!(is_raw_record(&map(json!({"eventSource": "x"}))));
        assert!(!is_raw_record(&map(json!({"event": {"provider": "x"}}))));
    }
}
