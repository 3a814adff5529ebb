//! Alerts as OCSF Detection Findings (class 2004, schema 1.1), for AWS Security Lake and other OCSF
//! consumers. The component writes Elastic Security alerts; this maps one to the other, keeping the
//! source record as `raw_data` and the whole ECS alert under `unmapped`, so nothing is lost.

use serde_json::{Map, Value, json};

/// OCSF schema version the findings follow.
pub const OCSF_VERSION: &str = "1.1.0";

/// The OCSF Detection Finding for one ECS alert (JSON text in, JSON text out).
pub fn detection_finding(alert: &str) -> Result<String, serde_json::Error> {
    let ecs: Value = serde_json::from_str(alert)?;
    let kibana = &ecs["kibana"]["alert"];
    let rule = &kibana["rule"];
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let (severity_id, severity) = match kibana["severity"].as_str() {
        Some("low") => (2, "Low"),
        Some("medium") => (3, "Medium"),
        Some("high") => (4, "High"),
        Some("critical") => (5, "Critical"),
        _ => (0, "Unknown"),
    };
    let time = kibana["original_time"]
        .as_str()
        .and_then(newterms_snapshot::time::parse_iso8601);
    let attacks: Vec<Value> = rule["threat"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|threat| {
            let tactic = json!({"uid": threat["tactic"]["id"], "name": threat["tactic"]["name"]});
            threat["technique"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |technique| {
                    json!({
                        "tactic": tactic,
                        "technique": {"uid": technique["id"], "name": technique["name"]},
                        "version": "14",
                    })
                })
        })
        .collect();

    let mut finding = Map::new();
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            finding.insert(key.to_owned(), value);
        }
    };
    put("class_uid", json!(2004));
    put("class_name", json!("Detection Finding"));
    put("category_uid", json!(2));
    put("category_name", json!("Findings"));
    put("activity_id", json!(1));
    put("activity_name", json!("Create"));
    put("type_uid", json!(200_401));
    put("type_name", json!("Detection Finding: Create"));
    put("severity_id", json!(severity_id));
    put("severity", json!(severity));
    put("status_id", json!(1));
    put("status", json!("New"));
    put("time", json!(time));
    put("message", kibana["reason"].clone());
    put("risk_score", kibana["risk_score"].clone());
    put(
        "finding_info",
        json!({
            "uid": kibana["uuid"],
            "title": rule["name"],
            "types": ["New Terms"],
            "analytic": {"uid": rule["rule_id"], "name": rule["name"], "type_id": 1, "type": "Rule"},
            "attacks": attacks,
            "first_seen_time": time,
            "data_sources": ["aws.cloudtrail"],
        }),
    );
    put(
        "metadata",
        json!({
            "version": OCSF_VERSION,
            "product": {"name": "newterms", "vendor_name": "newterms", "version": env!("CARGO_PKG_VERSION")},
            "original_uid": ecs["event"]["id"],
        }),
    );
    put(
        "cloud",
        json!({
            "provider": "AWS",
            "region": ecs["cloud"]["region"],
            "account": {"uid": ecs["cloud"]["account"]["id"]},
        }),
    );
    let identity = &ecs["aws"]["cloudtrail"]["user_identity"];
    let actor = json!({
        "user": {
            "name": ecs["user"]["name"],
            "uid": identity["arn"],
            "type": identity["type"],
            "credential_uid": identity["access_key_id"],
        }
    });
    let endpoint = json!({"ip": ecs["source"]["ip"], "domain": ecs["source"]["address"]});
    let api = json!({
        "operation": ecs["event"]["action"],
        "service": {"name": ecs["event"]["provider"]},
        "request": {"data": ecs["aws"]["cloudtrail"]["request_parameters"]},
    });
    put(
        "evidences",
        json!([{"actor": actor, "src_endpoint": endpoint, "api": api}]),
    );
    put("raw_data", json!(text(&ecs["event"]["original"])));
    put("unmapped", json!({"ecs": ecs}));
    Ok(Value::Object(finding).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_rule_the_actor_and_the_time() {
        let alert = json!({
            "@timestamp": "2024-05-01T10:00:00.000Z",
            "event": {"id": "e-1", "action": "Invoke", "provider": "lambda.amazonaws.com", "original": "{}"},
            "user": {"name": "alice"},
            "cloud": {"account": {"id": "111122223333"}, "region": "us-east-1"},
            "source": {"ip": "203.0.113.7", "address": "203.0.113.7"},
            "aws": {"cloudtrail": {"user_identity": {"arn": "arn:aws:iam::111122223333:user/alice", "type": "IAMUser"}}},
            "kibana": {"alert": {
                "uuid": "abc", "original_time": "2024-05-01T10:00:00.000Z", "severity": "medium",
                "risk_score": 47, "reason": "event by alice",
                "rule": {"name": "R", "rule_id": "r-1", "threat": [{"tactic": {"id": "TA0002", "name": "Execution"},
                         "technique": [{"id": "T1648", "name": "Serverless Execution"}]}]}
            }}
        });
        let finding: Value =
            serde_json::from_str(&detection_finding(&alert.to_string()).expect("maps"))
                .expect("JSON");
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(finding["type_uid"], 200_401);
        assert_eq!(finding["severity_id"], 3);
        assert_eq!(finding["time"], 1_714_557_600_000_i64);
        assert_eq!(finding["finding_info"]["uid"], "abc");
        assert_eq!(finding["finding_info"]["analytic"]["uid"], "r-1");
        assert_eq!(
            finding["finding_info"]["attacks"][0]["technique"]["uid"],
            "T1648"
        );
        assert_eq!(finding["cloud"]["account"]["uid"], "111122223333");
        assert_eq!(finding["evidences"][0]["actor"]["user"]["name"], "alice");
        assert_eq!(finding["evidences"][0]["api"]["operation"], "Invoke");
        assert_eq!(finding["metadata"]["original_uid"], "e-1");
        assert_eq!(finding["raw_data"], "{}");
        assert_eq!(finding["unmapped"]["ecs"], alert);
    }
}
