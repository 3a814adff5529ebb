//! The raw-to-ECS mapping against Elastic's own pipeline test cases: for every field of the mapping
//! table, what `to_ecs` makes of the raw record equals what Elastic's pipeline indexed.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use newterms_guest::cloudtrail::to_ecs;
use newterms_guest::fields;
use serde_json::Value;

const MAPPED_FIELDS: &[&str] = &[
    "@timestamp",
    "event.provider",
    "event.action",
    "event.outcome",
    "event.id",
    "user.name",
    "cloud.account.id",
    "cloud.region",
    "aws.cloudtrail.user_identity.arn",
    "aws.cloudtrail.user_identity.type",
    "aws.cloudtrail.user_identity.access_key_id",
    "aws.cloudtrail.user_identity.invoked_by",
    "aws.cloudtrail.recipient_account_id",
    "source.address",
    "source.ip",
    "user_agent.original",
];

fn fixtures() -> Vec<(String, Value)> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/elastic");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&directory).expect("fixtures directory") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("fixture");
        let document: Value = serde_json::from_str(&text).expect("fixture is JSON");
        for (index, expected) in document["expected"]
            .as_array()
            .expect("expected")
            .iter()
            .enumerate()
        {
            let name = format!(
                "{} #{index}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            cases.push((name, expected.clone()));
        }
    }
    assert!(cases.len() >= 6, "found {} cases", cases.len());
    cases
}

fn strings(document: &Value, field: &str) -> Vec<String> {
    fields::values(document, field)
        .into_iter()
        .map(|value| value.into_owned())
        .collect()
}

#[test]
fn every_mapped_field_matches_elastic_pipeline_output() {
    let mut compared = 0;
    for (name, expected) in fixtures() {
        let original = expected["event"]["original"]
            .as_str()
            .expect("event.original");
        let raw: Value = serde_json::from_str(original).expect("raw record");
        let ours = to_ecs(raw.as_object().expect("object"));
        for field in MAPPED_FIELDS {
            let theirs = strings(&expected, field);
            assert_eq!(strings(&ours, field), theirs, "{name}: {field}");
            compared += usize::from(!theirs.is_empty());
        }
    }
    // Most fields are present in most cases: the comparison is not vacuous.
    assert!(compared >= 60, "only {compared} non-empty fields compared");
}
