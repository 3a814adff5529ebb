//! Elastic's `new_terms` rule files: every one loads, and the built-in rule given as its TOML decides
//! as the hand-written detector does.
#![cfg(feature = "rule-toml")]

use std::path::Path;

use newterms_guest::kql::{self, RuleError};
use newterms_guest::{Config, Detector, Profile, cloudtrail};
use serde_json::Value;

mod common;
use common::{copied_rules, repo, rule_folders, shared, toml_files};

fn load(path: &Path) -> Result<kql::Rule, RuleError> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    kql::load_rule(&text)
}

#[test]
fn every_published_new_terms_rule_loads() {
    for folder in rule_folders() {
        let files = toml_files(&folder);
        assert!(!files.is_empty(), "{}", folder.display());
        let mut refused = Vec::new();
        for file in &files {
            match load(file) {
                Ok(rule) => {
                    assert!(!rule.rule_id.is_empty() && !rule.name.is_empty());
                    assert!((1..=3).contains(&rule.new_terms_fields.len()));
                    assert!(rule.window_ms > 0);
                }
                Err(error) => refused.push(format!("{}: {error}", file.display())),
            }
        }
        assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
        eprintln!("{}: {} rules loaded", folder.display(), files.len());
    }
}

/// Every line of the corpora, raw CloudTrail mapped to ECS and ECS as it is, and the same ECS
/// document again as an ECS event: the published TOML's query and the built-in detector's query
/// agree on whether it matches.
#[test]
fn the_lambda_rule_as_toml_agrees_with_the_built_in_rule() {
    let rule =
        load(&copied_rules().join("execution_lambda_function_invoked_by_unusual_principal.toml"))
            .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rule.rule_id, "07cd35a6-c267-4394-a782-6a9428aea9d3");
    assert_eq!(rule.new_terms_fields, ["cloud.account.id", "user.name"]);
    assert_eq!(rule.window_ms, 7 * 86_400_000);

    // The repository's own corpora first, so that a clone without ../shared checks as much.
    let mut corpora = vec![
        repo().join("examples/lambda-invocations.ndjson"),
        repo().join("tests/fixtures/cloudtrail/lambda_invoke.ndjson"),
        repo().join("tests/fixtures/cloudtrail/mixed_all.ndjson.gz"),
    ];
    corpora.extend(shared("cloudtrail/CORPUS_lambda_invoke.ndjson"));
    corpora.extend(shared("cloudtrail/CORPUS_mixed_all.ndjson"));
    let (mut documents, mut matched) = (0, 0);
    for corpus in corpora {
        let text = common::read_corpus(&corpus);
        assert!(!text.is_empty(), "{}", corpus.display());
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let ecs = if cloudtrail::is_raw_record(&object) {
                cloudtrail::to_ecs(&object)
            } else {
                Value::Object(object)
            };
            for event in [line.to_owned(), ecs.to_string()] {
                let mut detector = Detector::new(Config {
                    profile: Profile::Elastic,
                    ..Config::default()
                })
                .unwrap_or_else(|error| panic!("{error:?}"));
                let _ = detector.process_exact(&event);
                let built_in = detector.stats().matched == 1;
                assert_eq!(
                    rule.matches(&ecs),
                    built_in,
                    "{}: {event}",
                    corpus.display()
                );
                documents += 1;
                matched += usize::from(built_in);
            }
        }
    }
    assert!(
        documents > 100 && matched > 0,
        "{documents} documents, {matched} matched"
    );
}

#[test]
fn filters_apply_with_case_insensitive_wildcards_and_negation() {
    let rule = load(
        &copied_rules().join("privilege_escalation_printspooler_service_suspicious_file.toml"),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rule.filters.len(), 7);
    let event = |path: &str| {
        serde_json::json!({
            "event": {"category": "file", "type": "change"},
            "host": {"os": {"type": "windows"}},
            "process": {"executable": "C:\\Windows\\System32\\spoolsv.exe"},
            "file": {"path": path},
        })
    };
    // Only the query's own clauses decide without the filters.
    let inside = event("c:\\windows\\SYSTEM32\\evil.dll");
    let query_holds = rule.compiled().matches(&inside);
    assert_eq!(rule.matches(&inside), query_holds);
    // `negate = false`: the path must match `?:\Windows\Sys?????\*`, case-insensitively.
    assert!(!rule.matches(&event("D:\\Temp\\evil.dll")));
    // `negate = true`: known spooler files are excluded, whatever their case.
    assert!(!rule.matches(&event("C:\\WINDOWS\\System32\\printconfig.DLL")));
    assert!(!rule.matches(&event(
        "C:\\Windows\\system32\\spool\\DRIVERS\\x64\\3\\a.dll"
    )));
}

#[test]
fn refusals_are_typed_and_say_where() {
    let refuse = |text: &str| kql::load_rule(text).err();
    assert!(matches!(
        refuse("[rule\n"),
        Some(RuleError::Toml { line: 1, .. })
    ));
    assert!(matches!(
        refuse("a = 1\nb = \n"),
        Some(RuleError::Toml { line: 2, .. })
    ));
    assert_eq!(refuse("[metadata]\n"), Some(RuleError::Missing("rule")));
    let base = |extra: &str| {
        format!(
            "[rule]\nrule_id = \"x\"\nname = \"n\"\nseverity = \"low\"\nrisk_score = 21\n\
             language = \"kuery\"\ntype = \"new_terms\"\nquery = '''a: b'''\n{extra}\n\
             [rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = [\"user.name\"]\n\
             [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\nvalue = \"now-3h\"\n"
        )
    };
    let rule = kql::load_rule(&base("")).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rule.window_ms, 3 * 3_600_000);
    assert!(matches!(
        refuse(&base("").replace("type = \"new_terms\"", "type = \"query\"")),
        Some(RuleError::NotNewTerms(kind)) if kind == "query"
    ));
    assert!(matches!(
        refuse(&base("").replace("\"kuery\"", "\"eql\"")),
        Some(RuleError::Language(_))
    ));
    assert!(matches!(
        refuse(&base("").replace("a: b", "a: (b")),
        Some(RuleError::Query(error)) if error.line == 1 && error.column == 6
    ));
    assert!(matches!(
        refuse(&base("").replace("a: b", "source.ip: b")),
        Some(RuleError::Compile(_))
    ));
    assert!(matches!(
        refuse(&base("").replace("now-3h", "now-3y")),
        Some(RuleError::Invalid { .. })
    ));
    // A term field of more parts than the query's fields may have, and the limit in the message.
    let deep = vec!["a"; kql::parse::MAX_FIELD_PARTS + 1].join(".");
    let message = refuse(&base("").replace("\"user.name\"", &format!("\"{deep}\"")))
        .map(|error| error.to_string());
    let limit = kql::parse::MAX_FIELD_PARTS;
    assert_eq!(
        message,
        Some(format!(
            "rule.new_terms.value: a field name of {} parts, more than {limit}",
            limit + 1
        ))
    );
    assert!(matches!(
        refuse(&base("").replace("[\"user.name\"]", "[\"a\", \"b\", \"c\", \"d\"]")),
        Some(RuleError::Invalid { .. })
    ));
    assert!(matches!(
        refuse(&base("").replace("risk_score = 21", "risk_score = \"21\"")),
        Some(RuleError::Invalid { .. })
    ));
    let filter = "[[rule.filters]]\n[rule.filters.query.regexp.\"a\"]\nvalue = \"x\"\n";
    assert!(matches!(
        refuse(&base("").replace("[rule.new_terms]", &format!("{filter}[rule.new_terms]"))),
        Some(RuleError::Filter { index: 0, .. })
    ));
    assert!(matches!(
        refuse(&"#".repeat(2 << 20)),
        Some(RuleError::TooLarge(_))
    ));
    assert!(
        refuse(&format!(
            "a = {}{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ))
        .is_some()
    );
}

#[test]
fn a_rule_given_as_a_tree_loads_as_its_toml_does() {
    let tree = serde_json::json!({
        "metadata": {"updated_date": "2025/01/01"},
        "rule": {
            "rule_id": "x", "name": "n", "severity": "low", "risk_score": 21,
            "language": "kuery", "type": "new_terms", "query": "a: b and not c: *",
            "tags": ["t"],
            "new_terms": {
                "field": "new_terms_fields", "value": ["user.name", "host.name"],
                "history_window_start": [{"field": "history_window_start", "value": "now-2w"}],
            },
        },
    });
    let Value::Object(tree) = tree else {
        unreachable!()
    };
    let rule = kql::load_rule_tree(&tree).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rule.window_ms, 14 * 86_400_000);
    assert_eq!(rule.new_terms_fields, ["user.name", "host.name"]);
    assert_eq!(rule.updated_date.as_deref(), Some("2025/01/01"));
    assert!(rule.matches(&serde_json::json!({"a": "b"})));
    assert!(!rule.matches(&serde_json::json!({"a": "b", "c": 1})));
    let toml = "[metadata]\nupdated_date = \"2025/01/01\"\n[rule]\nrule_id = \"x\"\nname = \"n\"\n\
                severity = \"low\"\nrisk_score = 21\nlanguage = \"kuery\"\ntype = \"new_terms\"\n\
                query = \"a: b and not c: *\"\ntags = [\"t\"]\n[rule.new_terms]\n\
                field = \"new_terms_fields\"\nvalue = [\"user.name\", \"host.name\"]\n\
                [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\n\
                value = \"now-2w\"\n";
    let from_toml = kql::load_rule(toml).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(format!("{from_toml:?}"), format!("{rule:?}"));
}

/// The prefilter's needles for the built-in rule: on raw CloudTrail only a value the mapping copies
/// verbatim can be searched for (`data_stream.dataset` is added by the mapping, `event.outcome`
/// computed), so the needle is the provider, as the hand-written prefilter chose it.
#[test]
fn the_lambda_rule_needs_its_provider_in_the_text() {
    let rule =
        load(&copied_rules().join("execution_lambda_function_invoked_by_unusual_principal.toml"))
            .unwrap_or_else(|error| panic!("{error}"));
    let requirement = rule.requirement();
    let texts = |needles: Option<Vec<kql::Needle>>| {
        needles
            .unwrap_or_default()
            .into_iter()
            .map(|needle| (needle.field, needle.text))
            .collect::<Vec<_>>()
    };
    let provider = [(
        "event.provider".to_owned(),
        "lambda.amazonaws.com".to_owned(),
    )];
    let raw = requirement
        .as_ref()
        .and_then(|r| r.any_of(&|needle| cloudtrail::copies_verbatim(&needle.field)));
    assert_eq!(texts(raw), provider);
    let ecs = requirement.as_ref().and_then(|r| r.any_of(&|_| true));
    assert_eq!(texts(ecs), provider);
}

/// Elastic's own pipeline output (the `-expected.json` ECS documents of the AWS integration's
/// tests): the TOML's query and the built-in detector agree on each.
#[test]
fn the_lambda_rule_as_toml_agrees_on_elastic_pipeline_output() {
    let rule =
        load(&copied_rules().join("execution_lambda_function_invoked_by_unusual_principal.toml"))
            .unwrap_or_else(|error| panic!("{error}"));
    let mut folders = vec![repo().join("tests/fixtures/elastic")];
    folders.extend(shared("cloudtrail/elastic-integrations"));
    let mut documents = 0;
    for folder in folders {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if !path.to_string_lossy().ends_with("-expected.json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let expected: Value = serde_json::from_str(&text).unwrap_or_default();
            for ecs in expected["expected"].as_array().into_iter().flatten() {
                let mut detector = Detector::new(Config {
                    profile: Profile::Elastic,
                    ..Config::default()
                })
                .unwrap_or_else(|error| panic!("{error:?}"));
                let _ = detector.process_exact(&ecs.to_string());
                let built_in = detector.stats().matched == 1;
                assert_eq!(rule.matches(ecs), built_in, "{}: {ecs}", path.display());
                documents += 1;
            }
        }
    }
    assert!(documents >= 6, "{documents} documents");
}
