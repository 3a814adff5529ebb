//! The rule pack detector: the built-in rule given as its published TOML decides as the built-in
//! `elastic` profile; per-rule windows, terms and state; alerts carry the rule file's metadata.
#![cfg(feature = "rule-toml")]

use newterms_guest::kql::pack::Candidates;
use newterms_guest::kql::{self, Pack, Rule};
use newterms_guest::{Config, Detector, Engine, LineError, Notice, Profile, RulePackDetector};
use serde_json::Value;

mod common;
use common::{copied_rules, dotted, published_rules, repo, shared, toml_files};

fn lambda_rule() -> Rule {
    let path = copied_rules().join("execution_lambda_function_invoked_by_unusual_principal.toml");
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
    probe_rule_with(id, terms, query, version, "")
}

/// [`probe_rule`] with more TOML at the end of the file (filters).
fn probe_rule_with(id: &str, terms: &[&str], query: &str, version: i64, more: &str) -> Rule {
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
{more}"#
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

/// A document is evaluated only by the rules whose required event.action, data stream, event
/// category or OS it has (and those that require none), in either key style, arrays included.
#[test]
fn documents_are_dispatched_by_their_action_source_and_kind() {
    let rules = [
        ("action", r#"event.action: "Probe" and user.name: *"#),
        ("dataset", r#"data_stream.dataset: "x.y" and user.name: *"#),
        (
            "category",
            r#"event.category: ("process" or "file") and host.os.type: "linux""#,
        ),
        ("os", r#"host.os.type: "windows" and user.name: *"#),
        ("any", "user.name: *"),
        ("wildcard", "event.category: proc* and user.name: *"),
    ]
    .map(|(id, query)| probe_rule(id, &["user.name"], query, 1));
    let pack = Pack::new(rules.to_vec()).unwrap_or_else(|error| panic!("{error}"));
    let marked = |document: &str| -> Vec<&str> {
        let document: Value = serde_json::from_str(document).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Candidates::default();
        // The space of an earlier document's candidates is reused.
        pack.dispatched_document(&serde_json::json!({"host.os.type": "windows"}), &mut out);
        pack.dispatched_document(&document, &mut out);
        let mut matching = Vec::new();
        pack.matching(&document, &mut matching);
        for &index in &matching {
            assert!(
                out.contains(index),
                "rule {index} matches {document} but was not dispatched"
            );
        }
        let listed: Vec<usize> = (0..6).filter(|&index| out.contains(index)).collect();
        assert_eq!(out.listed(), listed, "in pack order");
        listed
            .into_iter()
            .map(|index| ["action", "dataset", "category", "os", "any", "wildcard"][index])
            .collect()
    };
    assert_eq!(
        marked(
            r#"{"event":{"category":["network","process"]},"host":{"os":{"type":"linux"}},"user":{"name":"u"}}"#
        ),
        ["category", "any", "wildcard"]
    );
    assert_eq!(
        marked(
            r#"{"event.action":"Probe","data_stream.dataset":"x.y","host.os.type":"windows","user":{"name":"u"}}"#
        ),
        ["action", "dataset", "os", "any", "wildcard"]
    );
    assert_eq!(marked(r#"{"user":{"name":"u"}}"#), ["any", "wildcard"]);
}

/// A raw CloudTrail record is evaluated only by the rules whose required API call or service it
/// has (and those that require neither), and never by a rule that needs a field no raw record has
/// or a data stream other than CloudTrail's.
#[test]
fn raw_records_are_dispatched_by_their_api_call_and_service() {
    let names = [
        "action", "service", "dataset", "no-field", "exists", "any", "either",
    ];
    let rules = [
        r#"event.action: "GetUser" and user.name: *"#,
        r#"event.provider: "lambda.amazonaws.com" and event.action: Invoke*"#,
        r#"data_stream.dataset: "okta.system" and user.name: *"#,
        r#"process.name: "sh" and user.name: *"#,
        "http.version: * or (user.name: * and process.name: *)",
        r#"data_stream.dataset: "aws.cloudtrail" and aws.cloudtrail.user_identity.access_key_id: AKIA*"#,
        r#"event.action: "GetUser" or event.provider: "iam.amazonaws.com""#,
    ];
    let rules: Vec<Rule> = names
        .iter()
        .zip(rules)
        .map(|(id, query)| probe_rule(id, &["user.name"], query, 1))
        .collect();
    let pack = Pack::new(rules).unwrap_or_else(|error| panic!("{error}"));
    let record = |source: &str, name: &str| {
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2024-05-01T00:00:00Z","eventSource":"{source}","eventName":"{name}","userIdentity":{{"type":"IAMUser","userName":"u","accessKeyId":"AKIAEXAMPLE"}}}}"#
        )
    };
    fn scanned(text: &str) -> newterms_guest::fastpath::RawFields<'_> {
        newterms_guest::fastpath::scan(text)
            .filter(|fields| fields.raw)
            .unwrap_or_else(|| panic!("scanned as raw: {text}"))
    }
    // Dispatched first, so that each record reuses the space of its candidates.
    let earlier = record("lambda.amazonaws.com", "Invoke");
    let listed = |text: &str| -> Vec<&str> {
        let fields = scanned(text);
        let mut out = Candidates::default();
        pack.dispatched(&scanned(&earlier), &mut out);
        let any = pack.dispatched(&fields, &mut out);
        let mut matching = Vec::new();
        let raw: serde_json::Map<String, Value> =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        pack.matching(&newterms_guest::cloudtrail::to_ecs(&raw), &mut matching);
        for &index in &matching {
            assert!(
                out.contains(index),
                "rule {index} matches {text} but was not dispatched"
            );
        }
        assert_eq!(any, Some(!out.listed().is_empty()));
        out.listed()
            .iter()
            .filter_map(|&index| names.get(index).copied())
            .collect()
    };
    assert_eq!(
        listed(&record("iam.amazonaws.com", "GetUser")),
        ["action", "any", "either"]
    );
    assert_eq!(
        listed(&record("lambda.amazonaws.com", "Invoke")),
        ["service", "any", "either"]
    );
    assert_eq!(
        listed(&record("s3.amazonaws.com", "GetObject")),
        ["any", "either"]
    );
}

#[test]
fn every_published_rule_loads_into_one_pack() {
    // The 221 published rules beside the repository (../shared); a clone without them loads the
    // copies the repository keeps, every one of them.
    let published = shared("elastic-rules/new_terms");
    let folder = published.clone().unwrap_or_else(copied_rules);
    let files = toml_files(&folder);
    let mut rules = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        rules.push(
            kql::load_rule(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display())),
        );
    }
    let expected = if published.is_some() {
        221
    } else {
        files.len()
    };
    assert_eq!(rules.len(), expected);
    assert!(rules.len() >= 5);
    let mut detector = pack_detector(rules);
    // The mixed corpus through all of them: by the fast path and dispatch as evaluated in full.
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

/// Rules of the fast path's equality tests: the published CloudTrail rules (or, without ../shared,
/// every copy the repository keeps), and probes that reach each case the fast path leaves to the
/// full path or reads specially.
fn fast_path_rules() -> Vec<Rule> {
    let folder = published_rules();
    let mut rules = Vec::new();
    for path in toml_files(&folder) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let cloudtrail = text.contains("logs-aws.cloudtrail") || !folder.ends_with("new_terms");
        if cloudtrail {
            rules.push(
                kql::load_rule(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display())),
            );
        }
    }
    assert!(rules.len() >= 5, "{}", folder.display());
    let filter = r#"
[[rule.filters]]
[rule.filters.meta]
negate = true
[rule.filters.query.wildcard."user_agent.original"]
case_insensitive = true
value = "*terraform*"
"#;
    // A probe reading what the fast path cannot read leaves every event it evaluates on to the
    // full path: each is guarded by a value, as published rules are.
    rules.extend([
        // An IP field (rewritten by the pipeline) in the query and the terms.
        probe_rule(
            "fast-ip",
            &["source.ip", "user.name"],
            r#"source.ip: (10.0.0.0/8 or "203.0.113.7" or "2001:db8::/32") or event.action: "Probe""#,
            1,
        ),
        // Above a row of the mapping (an object), and a field no row fills.
        probe_rule(
            "fast-object",
            &["event.provider"],
            "event.action: Probe and (aws.cloudtrail: * or host.name: * or event.provider: *)",
            1,
        ),
        // Fields only the full path makes.
        probe_rule(
            "fast-rewritten",
            &["cloud.region"],
            r#"event.action: (PutBucketAcl or Probe) and (aws.cloudtrail.request_parameters: *Bucket* or @timestamp < "2024-05-02")"#,
            1,
        ),
        // A nested query.
        probe_rule(
            "fast-nested",
            &["user.name"],
            r#"event.action: "CreateUser" and aws.cloudtrail.user_identity: { type: "IAMUser" }"#,
            1,
        ),
        // A term field that is an object, and three term fields.
        probe_rule(
            "fast-object-term",
            &["aws.cloudtrail.user_identity"],
            "event.action: GetCallerIdentity",
            1,
        ),
        probe_rule(
            "fast-three-terms",
            &["user_agent.original", "source.address", "aws.cloudtrail.user_identity.type"],
            r#"event.provider: "sts.amazonaws.com" and not user_agent.original: *Terraform*"#,
            1,
        ),
        // Members of the flattened request parameters, in the query and the terms; one beneath a
        // member, which the fast path leaves to the full path.
        probe_rule(
            "fast-request-parameter-query",
            &["user.name"],
            "event.action: (GetParameter or Probe) and aws.cloudtrail.flattened.request_parameters.withDecryption: true and not aws.cloudtrail.flattened.request_parameters.name: secret*",
            1,
        ),
        probe_rule(
            "fast-request-parameter-term",
            &["aws.cloudtrail.flattened.request_parameters.serialNumber", "cloud.account.id"],
            "event.action: (AssumeRole or Probe) and aws.cloudtrail.flattened.request_parameters.serialNumber: *",
            1,
        ),
        probe_rule(
            "fast-request-parameter-nested",
            &["user.name"],
            "event.action: Probe and aws.cloudtrail.flattened.request_parameters.policy.x: *",
            1,
        ),
        // A member of another flattened object the scan keeps.
        probe_rule(
            "fast-response-member",
            &["user.name", "aws.cloudtrail.flattened.response_elements.ConsoleLogin"],
            "event.action: (ConsoleLogin or AssumeRole or Probe) and aws.cloudtrail.flattened.response_elements.ConsoleLogin: *",
            1,
        ),
        // A console sign-in's flag, which other events do not have.
        probe_rule(
            "fast-console-flag",
            &["user.name", "aws.cloudtrail.console_login.additional_eventdata.mfa_used"],
            "event.action: (ConsoleLogin or AssumeRole or Probe) and not aws.cloudtrail.console_login.additional_eventdata.mfa_used: false",
            1,
        ),
        // Members of the resources, in the terms and the query (the pipeline renames `ARN`).
        probe_rule(
            "fast-resource-member",
            &["aws.cloudtrail.resources.arn", "aws.cloudtrail.resources.account_id"],
            "event.action: (AssumeRole or Probe) and aws.cloudtrail.resources.type: *Role* and not aws.cloudtrail.resources.arn: *denied*",
            1,
        ),
        // Filters.
        probe_rule_with(
            "fast-filters",
            &["user.name"],
            "event.outcome: success and aws.cloudtrail.user_identity.access_key_id: AKIA*",
            1,
            filter,
        ),
    ]);
    rules
}

/// Runs `lines` through the fast path ([`RulePackDetector::process`]) and through the full path
/// alone ([`RulePackDetector::process_exact`]) under `config`: the same outcome for every event,
/// the same counters and the same state after. Returns how many events the fast path decided.
fn fast_equals_full<'a>(lines: impl Iterator<Item = &'a str>, config: &Config) -> u64 {
    let rules = fast_path_rules();
    let detector = |rules: Vec<Rule>| {
        RulePackDetector::new(
            Pack::new(rules).unwrap_or_else(|error| panic!("{error}")),
            config.clone(),
        )
        .unwrap_or_else(|error| panic!("{error}"))
    };
    let mut fast = detector(rules.clone());
    // Records as bytes, as NDJSON buffers come: the fast path takes ASCII ones without a UTF-8 check.
    let mut bytes = detector(rules.clone());
    // And as NDJSON buffers of 100 lines, blank lines between.
    let mut batched = detector(rules.clone());
    // And in stages, as `--threads` runs it: extracted by one pack, decided by another.
    let staged = |rules: Vec<Rule>| Engine::Pack(Box::new(detector(rules)));
    let (mut extractor, mut decider) = (staged(rules.clone()), staged(rules.clone()));
    let mut full = detector(rules);
    let lines: Vec<&str> = lines.filter(|line| !line.trim().is_empty()).collect();
    for chunk in lines.chunks(100) {
        let mut expected_outcomes = Vec::new();
        for (index, line) in chunk.iter().enumerate() {
            let expected = full.process_exact(line);
            assert_eq!(fast.process(line), expected, "{line}");
            let expected = expected.map_err(LineError::Event);
            assert_eq!(bytes.process_bytes(line.as_bytes()), expected, "{line}");
            if expected.as_ref().map_or(true, |alerts| !alerts.is_empty()) {
                expected_outcomes.push((2 * index, expected));
            }
        }
        let buffer = chunk.join("\n\n");
        let outcomes: Vec<_> = batched
            .process_ndjson(buffer.as_bytes())
            .into_iter()
            .map(|outcome| (outcome.line as usize, outcome.outcome))
            .collect();
        assert_eq!(outcomes, expected_outcomes);
        let staged: Vec<_> =
            common::process_in_stages(&mut extractor, &mut decider, buffer.as_bytes())
                .into_iter()
                .map(|outcome| (outcome.line as usize, outcome.outcome))
                .collect();
        assert_eq!(staged, expected_outcomes);
    }
    for other in [&fast, &bytes, &batched] {
        assert_eq!(other.stats(), full.stats());
        assert_eq!(other.terms_per_rule(), full.terms_per_rule());
        assert!(other.snapshot() == full.snapshot(), "the same state");
    }
    assert_eq!(decider.stats(), full.stats());
    assert!(
        decider.snapshot() == full.snapshot(),
        "the same state in stages"
    );
    assert!(fast.fast_path_events() >= bytes.fast_path_events());
    assert_eq!(fast.sparse_path_events(), bytes.sparse_path_events());
    fast.fast_path_events() + fast.sparse_path_events()
}

/// The seeds of a randomised comparison: `first` alone, the one every run of the suite uses, or
/// with `NEWTERMS_SOAK_ROUNDS=N` that and N - 1 more, for a longer hunt
/// (`NEWTERMS_SOAK_ROUNDS=50 cargo test --release -p newterms-guest --test rule_pack`). Each is
/// printed before its round, so that a failure names the seed that reproduces it.
fn seeds(first: u64) -> impl Iterator<Item = u64> {
    let rounds: u64 = std::env::var("NEWTERMS_SOAK_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(1);
    (0..rounds.max(1)).map(move |round| {
        let seed = first.wrapping_add(round.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        eprintln!("seed {seed:#x}");
        seed
    })
}

/// One to three random changes to `text`: a character taken out, or one of `pieces` put in.
fn mutate(text: &mut String, rng: &mut common::Rng, pieces: &[&str]) {
    for _ in 0..1 + rng.below(3) {
        let mut at = rng.below(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        if rng.chance(25) && at < text.len() {
            text.remove(at);
        } else {
            text.insert_str(at, pieces[rng.below(pieces.len())]);
        }
    }
}

#[test]
fn ecs_documents_read_sparsely_decide_as_the_full_path() {
    for seed in seeds(0x00ec_5eed) {
        ecs_documents_read_sparsely_decide_as_the_full_path_from(seed);
    }
}

fn ecs_documents_read_sparsely_decide_as_the_full_path_from(seed: u64) {
    let corpus = common::read_corpus(&repo().join("tests/fixtures/cloudtrail/mixed_all.ndjson.gz"));
    let mut rng = common::Rng(seed);
    // The pipeline's documents in the three key styles: nested, dotted, and dotted from a depth.
    let mut documents = Vec::new();
    for line in corpus.lines() {
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if !newterms_guest::cloudtrail::is_raw_record(&record) {
            continue;
        }
        let ecs = newterms_guest::cloudtrail::to_ecs(&record);
        documents.push(dotted(&ecs, 1 + rng.below(3)).to_string());
        documents.push(dotted(&ecs, 0).to_string());
        documents.push(ecs.to_string());
    }
    let whole = documents.len();
    // And broken or odd: escapes, numbers, arrays, duplicates, anything in a field's place.
    let pieces: [&str; 22] = [
        "\\",
        "\\\"",
        "\"",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\\u0041",
        "\\uD800",
        " ",
        ":",
        "1",
        "-1",
        "1.5",
        "1e400",
        "true",
        "null",
        "[]",
        "{}",
        "\"\"",
        "18446744073709551616",
    ];
    for _ in 0..20_000 {
        let mut text = documents[rng.below(whole)].clone();
        mutate(&mut text, &mut rng, &pieces);
        // Lines come trimmed, as a host's reader and NDJSON buffers give them (an error's column
        // counts from the line's first character).
        documents.push(text.trim().to_owned());
    }
    let decided = fast_equals_full_learning_and_evicting(|| documents.iter().map(String::as_str));
    assert!(
        decided * 2 > documents.len() as u64,
        "{decided} of {}",
        documents.len()
    );
}

#[test]
fn the_fast_path_decides_as_the_full_path_on_real_records() {
    let mut corpora = vec![
        repo().join("tests/fixtures/cloudtrail/mixed_all.ndjson.gz"),
        repo().join("tests/fixtures/cloudtrail/lambda_invoke.ndjson"),
        repo().join("examples/lambda-invocations.ndjson"),
    ];
    corpora.extend(shared("cloudtrail/CORPUS_mixed_all.ndjson"));
    corpora.extend(shared("cloudtrail/CORPUS_lambda_invoke.ndjson"));
    corpora.extend(shared(
        "cloudtrail/elastic-integrations/ALL_elastic_originals.extracted.ndjson",
    ));
    let texts: Vec<String> = corpora
        .iter()
        .map(|corpus| {
            let text = common::read_corpus(corpus);
            assert!(!text.is_empty(), "{}", corpus.display());
            text
        })
        .collect();
    let lines = || texts.iter().flat_map(|text| text.lines());
    let events = lines().count() as u64;
    let decided = fast_equals_full_learning_and_evicting(lines);
    // Real records are mostly plain; those that raise an alert (each corpus has many first-seen
    // terms) or hold escapes go to the full path, and so do those a rule reads a field of that the
    // scan does not keep (the flattened request parameters, resources, TLS details: the SSM, S3 and
    // STS records of these rules). Enough are decided that the comparison is not vacuous.
    assert!(decided * 5 > events, "{decided} of {events}");
}

/// A matching record whose time the full path refuses (unreadable or missing) is refused by the
/// fast path with the same error and counters, without the parser; one whose time the mapping
/// rewrites is left to it.
#[test]
fn a_matching_record_with_an_unreadable_time_is_refused_on_the_fast_path() {
    let record = |time: &str| {
        format!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"}},"eventTime":{time},"eventSource":"probe.amazonaws.com","eventName":"Probe","awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userAgent":"cli","requestParameters":null,"responseElements":null,"eventID":"e","eventType":"AwsApiCall","recipientAccountId":"1"}}"#
        )
    };
    let rules = || {
        vec![probe_rule(
            "probe",
            &["user.name"],
            "event.action: \"Probe\"",
            1,
        )]
    };
    // The time, whether the full path refuses the record, and whether the fast path decides it
    // (the record has no user name, so no term and no alert; a time the mapping rewrites, and one
    // that is not a string, are left to the parser).
    for (time, refused, fast_path) in [
        ("\"2023-05-26 20:14:51\"", true, true),
        ("\"yesterday\"", true, true),
        ("\"99999-01-01T00:00:00Z\"", true, true),
        // No `@timestamp` at all: refused as missing.
        ("null", true, true),
        ("\"\"", true, true),
        // A number is read as milliseconds by the parser alone.
        ("12", false, false),
        // Read, but before year 1: the mapping rewrites it, so only the parser knows the error's text.
        ("\"0000-01-01T00:00:00Z\"", true, false),
        ("\"1714521600000\"", false, true),
        ("\"2024-05-01T00:00:00Z\"", false, true),
    ] {
        let text = record(time);
        let (mut fast, mut full) = (pack_detector(rules()), pack_detector(rules()));
        let expected = full.process_exact(&text);
        assert_eq!(fast.process(&text), expected, "{time}");
        assert_eq!(fast.stats(), full.stats(), "{time}");
        assert_eq!(expected.is_err(), refused, "{time}");
        assert_eq!(fast.fast_path_events(), u64::from(fast_path), "{time}");
    }
}

/// [`fast_equals_full`] under the default configuration, then learning, then with a history so
/// small that it evicts; how many events the default one decided without the parser.
fn fast_equals_full_learning_and_evicting<'a, I: Iterator<Item = &'a str>>(
    lines: impl Fn() -> I,
) -> u64 {
    let decided = fast_equals_full(lines(), &Config::default());
    fast_equals_full(
        lines(),
        &Config {
            learn: true,
            ..Config::default()
        },
    );
    fast_equals_full(
        lines(),
        &Config {
            capacity: Some(3),
            ..Config::default()
        },
    );
    decided
}

/// A raw CloudTrail record made of values the rules test, and of the shapes the fast path must
/// decline or read exactly: blanks, numbers, arrays, objects where strings belong, escapes, IPv6 and
/// service addresses, bad and missing times, duplicate keys.
fn generated_record(rng: &mut common::Rng, minute: u64) -> String {
    fn pick<'a>(rng: &mut common::Rng, items: &[&'a str]) -> &'a str {
        items[rng.below(items.len())]
    }
    let provider = pick(
        rng,
        &[
            "\"sts.amazonaws.com\"",
            "\"iam.amazonaws.com\"",
            "\"s3.amazonaws.com\"",
            "\"ec2.amazonaws.com\"",
            "\"lambda.amazonaws.com\"",
            "\"ssm.amazonaws.com\"",
            "\"secretsmanager.amazonaws.com\"",
            "\"bedrock.amazonaws.com\"",
            "\"sns.amazonaws.com\"",
            "\"sts.amazonaws.co\\u006d\"",
            "[\"sts.amazonaws.com\"]",
            "null",
            "\"\"",
        ],
    );
    let action = pick(
        rng,
        &[
            "\"AssumeRole\"",
            "\"GetCallerIdentity\"",
            "\"Invoke\"",
            "\"GetSecretValue\"",
            "\"CreateUser\"",
            "\"PutBucketAcl\"",
            "\"SendCommand\"",
            "\"StartSession\"",
            "\"Publish\"",
            "\"CreateTopic\"",
            "\"Probe\"",
            "\"GetParameter\"",
            "\"ConsoleLogin\"",
            "\"CreateKeyPair\"",
            "\"AssumeRoot\"",
            "\"ListBuckets\"",
            "7",
            "null",
        ],
    );
    let kind = pick(
        rng,
        &[
            "\"IAMUser\"",
            "\"AssumedRole\"",
            "\"AWSService\"",
            "\"Root\"",
            "\"Unknown\"",
            "null",
            "true",
        ],
    );
    let key = pick(
        rng,
        &["\"AKIA1\"", "\"ASIA2\"", "\"\"", "null", "\"akia3\""],
    );
    let agent = pick(
        rng,
        &[
            "\"aws-cli/2\"",
            "\"Terraform/1.5\"",
            "\"S3 Browser 9\"",
            "\"Cyberduck/8 (Mac OS X; Übersicht)\"",
            "\"AWS Internal\"",
            "\"aws-cli\\/2\"",
            "\"\"",
            "{\"a\":1}",
        ],
    );
    let address = pick(
        rng,
        &[
            "\"203.0.113.7\"",
            "\"10.1.2.3\"",
            "\"2001:db8::1\"",
            "\"::ffff:10.0.0.1\"",
            "\"s3.amazonaws.com\"",
            "\"AWS Internal\"",
            "\"\"",
            "5",
        ],
    );
    let user = format!("\"user-{}\"", rng.below(4));
    let user = pick(rng, &[user.as_str(), user.as_str(), "null", "\"\""]);
    let invoked = pick(rng, &["", "", r#","invokedBy":"ec2.amazonaws.com""#]);
    let issuer = pick(
        rng,
        &[
            "",
            r#","sessionContext":{"sessionIssuer":{"userName":"deploy","arn":"arn:aws:iam::1:role/AgentCore-x"}}"#,
            r#","sessionContext":"none""#,
        ],
    );
    let error = pick(
        rng,
        &[
            "",
            r#","errorCode":"AccessDenied""#,
            r#","errorMessage":null"#,
        ],
    );
    // Times the full path refuses or reads otherwise, which the fast path must refuse or read alike.
    let time = match rng.below(24) {
        0 => "\"yesterday\"".to_owned(),
        1 => "1714521600000".to_owned(),
        2 => "null".to_owned(),
        3 => "\"1714521600000\"".to_owned(),
        4 => "\"2024-05-01 20:14:51\"".to_owned(),
        5 => "\"\"".to_owned(),
        6 => "\"99999-01-01T00:00:00Z\"".to_owned(),
        _ => format!(
            "\"2024-05-{:02}T{:02}:{:02}:{:02}.{:03}Z\"",
            1 + minute / 1440 % 28,
            minute / 60 % 24,
            minute % 60,
            rng.below(60),
            rng.below(1000)
        ),
    };
    // The shapes of `requestParameters` the fast path reads, and those it leaves to the full path.
    let long = format!(
        r#"{{"serialNumber":"arn:aws:iam::1:mfa/long","policy":"{}"}}"#,
        "p".repeat(33_000)
    );
    // Below the keyword limit as JSON, past it as Java renders it (`, ` between the numbers).
    let numbers = format!(
        r#"{{"withDecryption":true,"n":[{}1]}}"#,
        "1,".repeat(11_000)
    );
    let request = match rng.below(40) {
        0 => long.as_str(),
        1 => numbers.as_str(),
        2..=5 => pick(
            rng,
            &[
                // Escapes: in values the fast path skips, in a member it reads, and those the
                // parser refuses or the fast path leaves to it (surrogates).
                r#"{"policy":"{\"Statement\":[{\"Effect\":\"Deny\"}]}","serialNumber":"arn:mfa/e","withDecryption":true}"#,
                r#"{"name":"a\\b\/c\u00e9\n\t\"","bucketName":"b"}"#,
                r#"{"serialNumber":"arn:mfa\/f"}"#,
                r#"{"withDecryption":"tru\u0065","name":"param"}"#,
                r#"{"p":"\x41"}"#,
                r#"{"p":"\u12"}"#,
                r#"{"p":"\u12G4"}"#,
                r#"{"p":"\uD83D\uDE00"}"#,
                r#"{"p":"\uDE00"}"#,
                r#"{"p":"a\\"}"#,
                r#"{"p":"\\\""}"#,
                r#"{"p":"a\"}"#,
            ],
        ),
        _ => pick(
            rng,
            &[
                r#"{"bucketName":"b","n":[1,2.5,{"x":null}]}"#,
                r#"{"withDecryption":true,"name":"secret-1"}"#,
                r#"{"withDecryption":true,"name":"param"}"#,
                r#"{"withDecryption":"true","serialNumber":"arn:aws:iam::1:mfa/a"}"#,
                r#"{"withDecryption":false,"serialNumber":""}"#,
                r#"{"withDecryption":null,"serialNumber":null}"#,
                r#"{"withDecryption":1,"serialNumber":7}"#,
                r#"{"withDecryption":{"x":true},"serialNumber":{}}"#,
                r#"{"serialNumber":"arn:aws:iam::1:mfa/a","serialNumber":"arn:aws:iam::1:mfa/b"}"#,
                r#"{ "policy" : {"x": "y", "z": {"w": "}"}} , "serialNumber" : "arn:mfa/c" , "withDecryption" : true }"#,
                r#"{"withDecryption.x":true,"serialNumber.y":"z","policy.x":"y"}"#,
                r#"{"policy":{"x":"y"},"name":"[param]","withDecryption":true}"#,
                r#"{"names":["a","b"],"withDecryption":true,"serialNumber":["arn:mfa/d"]}"#,
                r#"{"a":null}"#,
                "{}",
                "null",
                r#""text""#,
                "7",
                "",
            ],
        ),
    };
    // A member of the record, or none for "".
    let member = |rng: &mut common::Rng, key: &str, values: &[&str]| match pick(rng, values) {
        "" => String::new(),
        value => format!(r#","{key}":{value}"#),
    };
    let request = member(rng, "requestParameters", &[request]);
    // A console sign-in's outcome comes from its answer when it has one, and its flags from its
    // data.
    let answers: &[&str] = &[
        "",
        "",
        r#"{"ConsoleLogin":"Success"}"#,
        r#"{"ConsoleLogin":"Failure"}"#,
        r#"{"ConsoleLogin":"success","x":{"y":"z"}}"#,
        r#"{"ConsoleLogin":"SUCCESS"}"#,
        r#"{"ConsoleLogin":"Succ\u0065ss"}"#,
        r#"{"ConsoleLogin":"Échec"}"#,
        r#"{"ConsoleLogin":true}"#,
        r#"{"ConsoleLogin":""}"#,
        r#"{"ConsoleLogin":1}"#,
        r#"{"ConsoleLogin":["Success"]}"#,
        "null",
        r#""Success""#,
    ];
    let flags: &[&str] = &[
        "",
        r#"{"MFAUsed":"No","MobileVersion":"No"}"#,
        r#"{"MFAUsed":"Yes"}"#,
        r#"{"MFAUsed":false}"#,
        r#"{"MFAUsed":""}"#,
        r#"{"MFAUsed":1}"#,
        r#"{"MFAUsed":["No"]}"#,
        "null",
        r#""No""#,
    ];
    // The shapes of `resources`: one resource (read), and those left to the full path.
    let resources = member(
        rng,
        "resources",
        &[
            "",
            "",
            r#"[{"accountId":"111","type":"AWS::IAM::Role","ARN":"arn:aws:iam::111:role/r"}]"#,
            r#"[{"accountId":"111","type":"AWS::IAM::Role","ARN":"arn:aws:iam::111:role/denied"}]"#,
            r#"[ {"ARN" : "arn:aws:iam::111:role/s" , "type" : "AWS::IAM::Role"} ]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":"arn:aws:iam::111:role/r","arn":"other","accountId":"111"}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":"arn:a","accountId":"1"},{"type":"AWS::IAM::Role","ARN":"arn:b","accountId":"2"}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":"arn:a"},{"type":"AWS::IAM::Role","ARN":"arn:a"}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":"arn:x"},null]"#,
            r#"[{"type":{"a":"]}"},"ARN":"arn:q"}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":""}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":null,"accountId":"3"}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":7}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":true,"accountId":"111"}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":["arn:y"]}]"#,
            r#"[{"type":"AWS::IAM::Role","ARN":"arn:esc\/x","accountId":"111"}]"#,
            r#"[{}]"#,
            r#"["arn:z"]"#,
            r#"{"ARN":"arn:z","type":"AWS::IAM::Role"}"#,
            "[]",
            "null",
        ],
    );
    let sign_in: String = [
        ("responseElements", answers),
        ("additionalEventData", flags),
    ]
    .into_iter()
    .map(|(key, values)| member(rng, key, values))
    .collect();
    let identity = if rng.chance(3) {
        "\"root\"".to_owned()
    } else {
        format!(
            r#"{{"type":{kind},"arn":"arn:aws:iam::1:user/x","accountId":"111","accessKeyId":{key},"userName":{user}{invoked}{issuer}}}"#
        )
    };
    let mut record = format!(
        r#"{{"eventVersion":"1.08","userIdentity":{identity},"eventTime":{time},"eventSource":{provider},"eventName":{action},"awsRegion":"us-east-1","sourceIPAddress":{address},"userAgent":{agent}{request}{sign_in}{resources},"recipientAccountId":"222"{error}}}"#
    );
    match rng.below(14) {
        0 => record = record.replacen("\"eventName\"", "\"eventName\":\"Probe\",\"eventName\"", 1),
        1 => record = record.replace(',', ", "),
        2 => {
            let mut half = record.len() / 2;
            while !record.is_char_boundary(half) {
                half -= 1;
            }
            // NDJSON lines are trimmed: a cut that ends in a space would be reported a column
            // earlier in a buffer than alone.
            record.truncate(record[..half].trim_end().len());
        }
        // A key written with an escape, and a backslash outside any string.
        3 => record = record.replacen("\"userAgent\"", "\"userAgen\\u0074\"", 1),
        4 => record = record.replacen(",\"awsRegion\"", ",\\\"awsRegion\"", 1),
        _ => {}
    }
    record
}

#[test]
fn the_fast_path_decides_as_the_full_path_on_generated_records() {
    for seed in seeds(0x5eed_fa57) {
        fast_path_decides_as_the_full_path_on_generated_records(seed);
    }
}

fn fast_path_decides_as_the_full_path_on_generated_records(seed: u64) {
    let mut rng = common::Rng(seed);
    let mut minute = 0;
    let records: Vec<String> = (0..12_000)
        .map(|_| {
            // Mostly forward in time, sometimes back, across the rules' windows.
            minute = (minute + rng.below(240) as u64).saturating_sub(rng.below(30) as u64);
            generated_record(&mut rng, minute)
        })
        .collect();
    let lines = || records.iter().map(String::as_str);
    let decided = fast_equals_full(lines(), &Config::default());
    assert!(decided > 1_000, "{decided}");
    fast_equals_full(
        lines(),
        &Config {
            capacity: Some(2),
            ..Config::default()
        },
    );
}

/// Real records with escapes, quotes, brackets, separators and bytes above 0x7E inserted or bytes
/// removed at random: a pack decides each as its full path alone does, broken records included (a
/// pack skips unparsed only a record its fast path has read, and so validated).
#[test]
fn the_fast_path_decides_as_the_full_path_on_mutated_records() {
    for seed in seeds(0x0bad_5eed) {
        fast_path_decides_as_the_full_path_on_mutated_records(seed);
    }
}

fn fast_path_decides_as_the_full_path_on_mutated_records(seed: u64) {
    let corpus = common::read_corpus(&repo().join("tests/fixtures/cloudtrail/mixed_all.ndjson.gz"));
    let records: Vec<&str> = corpus
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let pieces: [&str; 18] = [
        "\\", "\\\"", "\\\\", "\"", "[", "]", "{", "}", ",", "\\u0041", "\\uD800", "\\u00e9",
        "\\/", "\\x", " ", ":", "é", "\u{7f}",
    ];
    let rules = fast_path_rules();
    let detector = || {
        RulePackDetector::new(
            Pack::new(rules.clone()).unwrap_or_else(|error| panic!("{error}")),
            Config::default(),
        )
        .unwrap_or_else(|error| panic!("{error}"))
    };
    let (mut fast, mut bytes, mut full) = (detector(), detector(), detector());
    let mut rng = common::Rng(seed);
    let (mut decided, mut broken) = (0, 0);
    for _ in 0..20_000 {
        let mut text = records[rng.below(records.len())].to_owned();
        mutate(&mut text, &mut rng, &pieces);
        let expected = full.process_exact(&text);
        let before = fast.fast_path_events();
        let found = fast.process(&text);
        decided += u64::from(fast.fast_path_events() > before);
        let found_bytes = bytes.process_bytes(text.as_bytes());
        broken += u64::from(expected.is_err());
        assert_eq!(found, expected, "{text}");
        assert_eq!(found_bytes, expected.map_err(LineError::Event), "{text}");
    }
    assert!(fast.snapshot() == full.snapshot(), "the same state");
    assert!(
        bytes.snapshot() == full.snapshot(),
        "the same state from bytes"
    );
    // Enough of each kind that the comparison is not vacuous.
    assert!(
        decided > 2_000 && broken > 2_000,
        "{decided} decided, {broken} broken"
    );
}
