//! The published AWS CloudTrail rules on raw CloudTrail: the raw-to-ECS mapping gives each rule the
//! document Elastic's ingest pipeline indexed. For every Elastic pipeline test case (raw record in
//! `event.original`, Elastic's ECS output around it) and every CloudTrail rule, the rule's verdict
//! and its term values are the same on `to_ecs(raw)` as on Elastic's document, except for fields
//! the mapping does not fill (enrichment, the entity pipeline), which the rule's summary names.
#![cfg(feature = "rule-toml")]

use newterms_guest::cloudtrail::to_ecs;
use newterms_guest::{fields, kql, rule_pack};
use serde_json::Value;

mod common;
use common::{repo, rule_folders, shared, toml_files};

/// The CloudTrail rules: the repository's copies, and all of `../shared`'s when it is beside it.
fn cloudtrail_rules() -> Vec<(String, kql::Rule)> {
    let mut rules: Vec<(String, kql::Rule)> = Vec::new();
    for folder in rule_folders() {
        for path in toml_files(&folder) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let rule = kql::load_rule(&text).unwrap_or_else(|error| panic!("{error}"));
            let on_cloudtrail = rule.query_text.contains("aws.cloudtrail");
            if on_cloudtrail && !rules.iter().any(|(_, known)| known.rule_id == rule.rule_id) {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                rules.push((name.into_owned(), rule));
            }
        }
    }
    rules
}

/// Elastic's pipeline cases that kept their raw input: (case name, Elastic's document, raw record).
fn pipeline_cases() -> Vec<(String, Value, Value)> {
    let mut folders = vec![repo().join("tests/fixtures/elastic")];
    folders.extend(shared("cloudtrail/elastic-integrations"));
    let mut cases: Vec<(String, Value, Value)> = Vec::new();
    for folder in folders {
        for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if !name.ends_with("-expected.json")
                || cases.iter().any(|(known, ..)| known.starts_with(&name))
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let document: Value = serde_json::from_str(&text).unwrap_or_default();
            for (index, expected) in document["expected"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let Some(original) = expected["event"]["original"].as_str() else {
                    continue;
                };
                let raw: Value = serde_json::from_str(original).unwrap_or_default();
                // As indexed: the data stream's template adds its constant fields.
                let mut indexed = expected.as_object().cloned().unwrap_or_default();
                fields::set(&mut indexed, "data_stream.dataset", "aws.cloudtrail".into());
                fields::set(&mut indexed, "event.dataset", "aws.cloudtrail".into());
                cases.push((format!("{name} #{index}"), Value::Object(indexed), raw));
            }
        }
    }
    cases
}

/// Fields a later pipeline fills that the mapping (and `rule.md`) does not: see
/// `elastic_mapping.rs`.
fn known_difference(case: &str, field: &str) -> bool {
    case.starts_with("test-user-authentication") && field == "user.name"
}

fn sorted_values(document: &Value, field: &str) -> Vec<String> {
    let mut values: Vec<String> = fields::values(document, field)
        .into_iter()
        .map(|value| value.into_owned())
        .collect();
    values.sort();
    values.dedup();
    values
}

#[test]
fn cloudtrail_rules_see_raw_records_as_elastic_indexed_them() {
    let rules = cloudtrail_rules();
    let cases = pipeline_cases();
    assert!(rules.len() >= 5, "{} CloudTrail rules", rules.len());
    assert!(cases.len() >= 8, "{} pipeline cases", cases.len());
    let (mut verdicts, mut matches, mut terms) = (0, 0, 0);
    for (file, rule) in &rules {
        let reads_unfilled = !rule_pack::enrichment_fields(rule).is_empty();
        for (case, expected, raw) in &cases {
            let ours = to_ecs(raw.as_object().expect("a raw record is an object"));
            let reads_known = rule
                .compiled()
                .fields()
                .iter()
                .any(|field| known_difference(case, field));
            if !reads_unfilled && !reads_known {
                let verdict = rule.matches(expected);
                assert_eq!(rule.matches(&ours), verdict, "{file} on {case}");
                verdicts += 1;
                matches += usize::from(verdict);
            }
            for field in &rule.new_terms_fields {
                if !rule_pack::is_enriched(field) && !known_difference(case, field) {
                    let theirs = sorted_values(expected, field);
                    assert_eq!(
                        sorted_values(&ours, field),
                        theirs,
                        "{file}: {field} on {case}"
                    );
                    terms += usize::from(!theirs.is_empty());
                }
            }
        }
    }
    eprintln!("{verdicts} verdicts ({matches} matches), {terms} non-empty term fields compared");
    // Not vacuous: some rules match these cases, and their term fields have values.
    assert!(
        matches >= 1 && terms >= 20,
        "{matches} matches, {terms} term fields"
    );
}
