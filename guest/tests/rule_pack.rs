//! The rule pack detector: the built-in rule given as its published TOML decides as the built-in
//! `elastic` profile; per-rule windows, terms and state; alerts carry the rule file's metadata.
#![cfg(feature = "rule-toml")]

use std::path::{Path, PathBuf};

use newterms_guest::kql::{self, Pack, Rule};
use newterms_guest::{Config, Detector, Notice, Profile, RulePackDetector};
use serde_json::Value;

mod common;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `shared/data/<rest>` in the repository's parent folder or any folder above it.
fn shared(rest: &str) -> Option<PathBuf> {
    let root = repo().canonicalize().ok()?;
    root.ancestors()
        .skip(1)
        .map(|folder| folder.join("shared/data").join(rest))
        .find(|path| path.exists())
}

fn lambda_rule() -> Rule {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "tests/data/elastic-rules/execution_lambda_function_invoked_by_unusual_principal.toml",
    );
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    kql::load_rule(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn pack_detector(rules: Vec<Rule>) -> RulePackDetector {
    RulePackDetector::new(
        Pack::new(rules).unwrap_or_else(|error| panic!("{error}")),
        Config::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"))
}

/// A small rule: `event.action: "Probe"`, terms `user.name` (and more), window `now-1h`.
fn probe_rule(id: &str, terms: &[&str], query: &str, version: i64) -> Rule {
    let terms = terms
        .iter()
        .map(|term| format!("{term:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        r#"[metadata]
creation_date = "2026/01/01"
maturity = "production"
updated_date = "2026/01/01"

[rule]
author = ["test"]
description = "probe"
from = "now-9m"
index = ["logs-*"]
language = "kuery"
license = "Elastic License v2"
name = "Probe {id}"
risk_score = 47
rule_id = "{id}"
severity = "medium"
tags = ["Domain: Test"]
type = "new_terms"
version = {version}
query = '''
{query}
'''

[[rule.threat]]
framework = "MITRE ATT&CK"
[rule.threat.tactic]
id = "TA0002"
name = "Execution"
reference = "https://attack.mitre.org/tactics/TA0002/"

[rule.new_terms]
field = "new_terms_fields"
value = [{terms}]
[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-1h"
"#
    );
    kql::load_rule(&text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

fn alerts_of(detector: &mut RulePackDetector, text: &str) -> Vec<Value> {
    detector
        .process(text)
        .unwrap_or_else(|error| panic!("{error} on {text}"))
        .iter()
        .map(|alert| serde_json::from_str(alert).unwrap_or_default())
        .collect()
}

#[test]
fn the_lambda_rule_as_its_toml_decides_as_the_elastic_profile() {
    // The repository's own corpora first, so that a clone without ../shared checks as much.
    let mut corpora = vec![
        repo().join("examples/lambda-invocations.ndjson"),
        repo().join("tests/fixtures/cloudtrail/lambda_invoke.ndjson"),
        repo().join("tests/fixtures/cloudtrail/mixed_all.ndjson.gz"),
    ];
    corpora.extend(shared("cloudtrail/CORPUS_lambda_invoke.ndjson"));
    corpora.extend(shared("cloudtrail/CORPUS_mixed_all.ndjson"));
    let mut compared = 0;
    // Each corpus as it is, and again with its raw CloudTrail records as the ECS documents Elastic's
    // pipeline makes of them (the other input the rule takes).
    let as_ecs = |line: &str| -> String {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) if newterms_guest::cloudtrail::is_raw_record(&object) => {
                newterms_guest::cloudtrail::to_ecs(&object).to_string()
            }
            _ => line.to_owned(),
        }
    };
    let texts = corpora.iter().flat_map(|corpus| {
        let text = common::read_corpus(corpus);
        assert!(!text.is_empty(), "{}", corpus.display());
        let ecs: String = text.lines().map(|line| as_ecs(line) + "\n").collect();
        [
            (corpus.clone(), text),
            (corpus.with_extension("as-ecs"), ecs),
        ]
    });
    for (corpus, text) in texts {
        let mut builtin = Detector::new(Config {
            profile: Profile::Elastic,
            ..Config::default()
        })
        .unwrap_or_else(|error| panic!("{error}"));
        let mut pack = pack_detector(vec![lambda_rule()]);
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let expected = builtin.process(line);
            let got = pack.process(line);
            // Same decisions: the same new terms from the same events (errors alike).
            let summary = |alerts: &Result<Vec<String>, _>| -> Result<Vec<(Value, Value)>, ()> {
                alerts
                    .as_ref()
                    .map(|alerts| {
                        alerts
                            .iter()
                            .map(|alert| {
                                let alert: Value = serde_json::from_str(alert).unwrap_or_default();
                                let kibana = &alert["kibana"]["alert"];
                                (kibana["new_terms"].clone(), kibana["original_time"].clone())
                            })
                            .collect()
                    })
                    .map_err(|_| ())
            };
            assert_eq!(
                summary(&got),
                summary(&expected),
                "{}: {line}",
                corpus.display()
            );
            compared += expected.as_ref().map_or(0, Vec::len);
        }
    }
    eprintln!("{compared} alerts compared");
    assert!(compared >= 8, "only {compared} alerts compared");
}

#[test]
fn alerts_carry_the_rule_files_metadata() {
    let mut detector = pack_detector(vec![lambda_rule()]);
    let event = r#"{"@timestamp":"2026-01-01T00:00:00Z","data_stream":{"dataset":"aws.cloudtrail"},"event":{"provider":"lambda.amazonaws.com","outcome":"success","action":"Invoke","id":"e1"},"aws":{"cloudtrail":{"user_identity":{"arn":"arn:aws:iam::111:user/alice"}}},"cloud":{"account":{"id":"111"}},"user":{"name":"alice"}}"#;
    let alerts = alerts_of(&mut detector, event);
    assert_eq!(alerts.len(), 1, "{event}");
    let alert = &alerts[0]["kibana"]["alert"];
    let rule = lambda_rule();
    assert_eq!(alert["rule"]["rule_id"], rule.rule_id.as_str());
    assert_eq!(alert["rule"]["name"], rule.name.as_str());
    assert_eq!(alert["severity"], rule.severity.as_str());
    assert_eq!(alert["risk_score"], rule.risk_score);
    assert_eq!(alert["rule"]["tags"], serde_json::json!(rule.tags));
    assert_eq!(alert["rule"]["threat"][0]["tactic"]["id"], "TA0002");
    assert_eq!(alert["new_terms"], serde_json::json!(["111", "alice"]));
    assert_eq!(
        alert["rule"]["parameters"]["history_window_start"],
        "now-7d"
    );
    assert_eq!(alerts[0]["event"]["kind"], "signal");
    // The uuid depends on the rule: the same event under another rule id has another.
    let mut other = rule.clone();
    other.rule_id = "another-rule".to_owned();
    let mut detector = pack_detector(vec![other]);
    let again = alerts_of(&mut detector, event);
    assert_ne!(again[0]["kibana"]["alert"]["uuid"], alert["uuid"]);
    assert_eq!(alert["uuid"].as_str().map(str::len), Some(64));
}

#[test]
fn each_rule_has_its_own_window_terms_and_history() {
    let one = probe_rule("probe-one", &["user.name"], r#"event.action: "Probe""#, 1);
    let two = probe_rule(
        "probe-two",
        &["user.name", "host.name"],
        r#"event.action: ("Probe" or "Other")"#,
        1,
    );
    let mut detector = pack_detector(vec![one, two]);
    let event = |time: &str, action: &str, users: &str, hosts: &str| {
        format!(
            r#"{{"@timestamp":"{time}","event.action":"{action}","user":{{"name":{users}}},"host.name":{hosts}}}"#
        )
    };
    let ids = |alerts: &[Value]| -> Vec<String> {
        alerts
            .iter()
            .map(|a| {
                a["kibana"]["alert"]["rule"]["rule_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    };
    // Arrays: values de-duplicated, then every combination is a term, in the rule's field order.
    let first = alerts_of(
        &mut detector,
        &event(
            "2026-01-01T00:00:00Z",
            "Probe",
            r#"["a","b","a"]"#,
            r#"["h"]"#,
        ),
    );
    assert_eq!(
        ids(&first),
        ["probe-one", "probe-one", "probe-two", "probe-two"]
    );
    assert_eq!(
        first[2]["kibana"]["alert"]["new_terms"],
        serde_json::json!(["a", "h"])
    );
    assert_eq!(
        first[3]["kibana"]["alert"]["new_terms"],
        serde_json::json!(["b", "h"])
    );
    // Only the second rule's query holds: only its history changes.
    let other = alerts_of(
        &mut detector,
        &event("2026-01-01T00:10:00Z", "Other", r#""c""#, r#""h""#),
    );
    assert_eq!(ids(&other), ["probe-two"]);
    // Window edges to the millisecond: exactly one hour later is not new, one millisecond more is.
    let edge = alerts_of(
        &mut detector,
        &event("2026-01-01T01:00:00.000Z", "Probe", r#""a""#, r#""h""#),
    );
    assert!(edge.is_empty(), "{edge:?}");
    let beyond = alerts_of(
        &mut detector,
        &event("2026-01-01T02:00:00.001Z", "Probe", r#""a""#, r#""h""#),
    );
    assert_eq!(ids(&beyond), ["probe-one", "probe-two"]);
    // A document missing a term field yields no term for that rule.
    let partial = alerts_of(
        &mut detector,
        r#"{"@timestamp":"2026-01-02T00:00:00Z","event.action":"Probe","user.name":"z"}"#,
    );
    assert_eq!(ids(&partial), ["probe-one"]);
    assert_eq!(detector.terms_per_rule(), [3, 3]);
}

#[test]
fn state_keeps_every_unchanged_rules_history() {
    let query = r#"event.action: "Probe""#;
    let one = probe_rule("probe-one", &["user.name"], query, 1);
    let two = probe_rule("probe-two", &["user.name"], query, 1);
    let three = probe_rule("probe-three", &["user.name"], query, 1);
    let event = r#"{"@timestamp":"2026-01-01T00:00:00Z","event.action":"Probe","user.name":"a"}"#;
    let later = r#"{"@timestamp":"2026-01-01T00:30:00Z","event.action":"Probe","user.name":"a"}"#;
    let mut detector = pack_detector(vec![one.clone(), two.clone()]);
    assert_eq!(alerts_of(&mut detector, event).len(), 2);
    let state = detector.snapshot();

    // Rule two removed, rule three added, rule one unchanged.
    let mut next = pack_detector(vec![one.clone(), three]);
    let notices = next
        .restore(&state)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(notices, [Notice::Removed("probe-two".to_owned())]);
    let alerts = alerts_of(&mut next, later);
    let ids: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["kibana"]["alert"]["rule"]["rule_id"].as_str())
        .collect();
    assert_eq!(ids, ["probe-three"], "rule one keeps its history");

    // Rule two's version changed: its history starts afresh, and the restore says so.
    let changed = probe_rule("probe-two", &["user.name"], query, 2);
    let mut next = pack_detector(vec![one, changed]);
    let notices = next
        .restore(&state)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(notices, [Notice::Changed("probe-two".to_owned())]);
    assert!(notices[0].to_string().contains("starts afresh"));
    assert_eq!(next.terms_per_rule(), [1, 0]);

    // The same in pieces, as hosts hand large states over.
    let mut pieces = pack_detector(vec![probe_rule("probe-one", &["user.name"], query, 1)]);
    pieces.restore_begin(state.len() as u64);
    for piece in state.chunks(7) {
        pieces
            .restore_write(piece)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    pieces
        .restore_end()
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(pieces.notices(), [Notice::Removed("probe-two".to_owned())]);
    assert_eq!(pieces.terms_per_rule(), [1]);

    // Not a pack's state: refused, nothing changed.
    assert!(next.restore(b"NTRMSNAP...").is_err());
    assert!(next.restore(&state[..state.len() - 3]).is_err());
    assert_eq!(next.terms_per_rule(), [1, 0]);
}

#[test]
fn every_published_rule_loads_into_one_pack() {
    // The 221 published rules beside the repository (../shared); a clone without them loads the
    // copies the repository keeps, every one of them.
    let published = shared("elastic-rules/new_terms");
    let folder = published
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/elastic-rules"));
    let files = std::fs::read_dir(&folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "toml"))
        .count();
    let mut rules = Vec::new();
    for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            rules.push(
                kql::load_rule(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display())),
            );
        }
    }
    assert_eq!(rules.len(), if published.is_some() { 221 } else { files });
    assert!(rules.len() >= 5);
    let mut detector = pack_detector(rules);
    // The mixed corpus through all of them: prefiltered as evaluated in full.
    let mut exact = pack_detector(detector.pack().rules().to_vec());
    // The real mixed corpus, as the repository keeps it.
    let text = common::read_corpus(&repo().join("tests/fixtures/cloudtrail/mixed_all.ndjson.gz"));
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        assert_eq!(
            detector.process(line).ok(),
            exact.process_exact(line).ok(),
            "{line}"
        );
    }
    assert!(detector.stats().events > 1000);
}
