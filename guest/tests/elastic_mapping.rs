//! The raw-to-ECS mapping against Elastic's own pipeline test cases: for every field of the mapping
//! table, what `to_ecs` makes of the raw record equals what Elastic's pipeline indexed (the cases
//! kept in the repository, and `../shared`'s when it is beside it).

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use newterms_guest::cloudtrail::to_ecs;
use newterms_guest::fields;
use serde_json::Value;

mod common;

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
    "user.id",
    "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
    "aws.cloudtrail.error_code",
    "aws.cloudtrail.error_message",
    "aws.cloudtrail.console_login.additional_eventdata.mfa_used",
    "aws.cloudtrail.console_login.additional_eventdata.mobile_version",
    "aws.cloudtrail.resources.arn",
    "aws.cloudtrail.resources.account_id",
    "aws.cloudtrail.resources.type",
    "tls.client.server_name",
];

/// Where Elastic's cases differ from the mapping on purpose: (case file, field, why).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "test-user-authentication.log-expected.json",
        "user.name",
        "a later pipeline than the one the mapping follows (rule.md) moves an IAM Identity Center \
         sign-in's additionalEventData.UserName to user.name",
    ),
    (
        "test-user-authentication.log-expected.json",
        FLATTENED,
        "the same later pipeline removes that UserName from the flattened copy",
    ),
    (
        "test-update-lambda-json.log-expected.json",
        "@timestamp",
        "the record has no eventTime: the test harness's own @timestamp stays",
    ),
];

/// Fields copied whole from the raw record (`flattened`): every leaf below them is compared.
const FLATTENED: &str = "aws.cloudtrail.flattened";

fn fixtures() -> Vec<(String, Value)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(common::repo().join("tests/fixtures/elastic"))
        .expect("fixtures directory")
        .map(|entry| entry.expect("entry").path())
        .collect();
    // ../shared holds the same cases and more; a case kept in both is compared once.
    let shared = common::shared("cloudtrail/elastic-integrations");
    for entry in shared
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .flatten()
    {
        let path = entry.path();
        let name = path.file_name().unwrap_or_default().to_owned();
        let expected = name.to_string_lossy().ends_with("-expected.json");
        if expected && !paths.iter().any(|kept| kept.file_name() == Some(&name)) {
            paths.push(path);
        }
    }
    let mut cases = Vec::new();
    for path in paths {
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

/// The values of `field`, in no particular order (the pipeline's maps have none).
fn strings(document: &Value, field: &str) -> Vec<String> {
    let mut values: Vec<String> = fields::values(document, field)
        .into_iter()
        .map(|value| value.into_owned())
        .collect();
    values.sort();
    values
}

/// Every leaf below `field`, as (dotted path, value) pairs, sorted.
fn leaves(document: &Value, field: &str) -> Vec<(String, String)> {
    fn walk(value: &Value, path: String, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    walk(child, format!("{path}.{key}"), out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, path.clone(), out)),
            Value::String(text) => out.push((path, text.clone())),
            other => out.push((path, other.to_string())),
        }
    }
    let mut out = Vec::new();
    let mut node = document;
    for key in field.split('.') {
        match node.get(key) {
            Some(child) => node = child,
            None => return out,
        }
    }
    walk(node, field.to_owned(), &mut out);
    out.sort();
    out
}

fn known(case: &str, field: &str) -> bool {
    KNOWN_DIFFERENCES
        .iter()
        .any(|(file, known_field, _)| case.starts_with(file) && *known_field == field)
}

#[test]
fn every_mapped_field_matches_elastic_pipeline_output() {
    let mut compared = 0;
    let mut differences = Vec::new();
    for (name, expected) in fixtures() {
        // Cases whose input Elastic did not keep in `event.original` cannot be replayed here.
        let Some(original) = expected["event"]["original"].as_str() else {
            continue;
        };
        let raw: Value = serde_json::from_str(original).expect("raw record");
        let ours = to_ecs(raw.as_object().expect("object"));
        for field in MAPPED_FIELDS {
            let theirs = strings(&expected, field);
            let mine = strings(&ours, field);
            if mine != theirs && !known(&name, field) {
                differences.push(format!(
                    "{name}: {field}: ours {mine:?}, Elastic's {theirs:?}"
                ));
            }
            compared += usize::from(!theirs.is_empty());
        }
        let theirs = leaves(&expected, FLATTENED);
        let mine = leaves(&ours, FLATTENED);
        if mine != theirs && !known(&name, FLATTENED) {
            differences.push(format!(
                "{name}: {FLATTENED}: ours {mine:?}, Elastic's {theirs:?}"
            ));
        }
        compared += theirs.len();
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // Most fields are present in most cases: the comparison is not vacuous.
    assert!(compared >= 60, "only {compared} non-empty fields compared");
}
