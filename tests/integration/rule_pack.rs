//! Rule files through the real CLI and component: `scan --rules`, `info --rules`, `rules = [...]`
//! in the configuration file, and a pack's state across runs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{direct_invoke, newterms, scratch, write_ndjson};

fn rule_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../guest/tests/data/elastic-rules")
        .join(name)
}

const LAMBDA: &str = "execution_lambda_function_invoked_by_unusual_principal.toml";

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn rule_ids(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|alert| {
            alert["kibana"]["alert"]["rule"]["rule_id"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[test]
fn scan_with_the_lambda_rule_file_raises_the_elastic_profiles_alerts() {
    let dir = scratch("pack-scan");
    let events = [
        direct_invoke("alice", "2026-01-01T00:00:00Z"),
        direct_invoke("alice", "2026-01-02T00:00:00Z"),
        direct_invoke("bob", "2026-01-03T00:00:00Z"),
        direct_invoke("alice", "2026-01-20T00:00:00Z"),
    ];
    let input = dir.join("events.ndjson");
    write_ndjson(&input, &events);
    let builtin = newterms(&["scan", "--profile", "elastic", text(&input)], b"");
    let rule = rule_data(LAMBDA);
    let pack = newterms(&["scan", "--rules", text(&rule), text(&input)], b"");
    assert!(pack.status.success(), "{}", pack.stderr);
    let terms = |alerts: &[Value]| -> Vec<Value> {
        alerts
            .iter()
            .map(|a| a["kibana"]["alert"]["new_terms"].clone())
            .collect()
    };
    assert_eq!(terms(&pack.alerts), terms(&builtin.alerts));
    assert_eq!(pack.alerts.len(), 3, "{}", pack.stdout);
    assert!(
        rule_ids(&pack.alerts)
            .iter()
            .all(|id| id == "07cd35a6-c267-4394-a782-6a9428aea9d3")
    );
    // A folder loads every *.toml in it: the other rules raise nothing on these events.
    let folder = newterms(
        &["scan", "--rules", text(&rule_data("")), text(&input)],
        b"",
    );
    assert!(folder.status.success(), "{}", folder.stderr);
    assert_eq!(terms(&folder.alerts), terms(&builtin.alerts));
}

#[test]
fn rules_in_the_configuration_file_are_relative_to_it() {
    let dir = scratch("pack-config");
    std::fs::copy(rule_data(LAMBDA), dir.join("lambda.toml")).expect("copy rule");
    let config = dir.join("newterms.toml");
    std::fs::write(&config, "rules = [\"lambda.toml\"]\n").expect("write config");
    let input = dir.join("events.ndjson");
    write_ndjson(&input, &[direct_invoke("carol", "2026-01-01T00:00:00Z")]);
    let run = newterms(&["scan", "--config", text(&config), text(&input)], b"");
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        rule_ids(&run.alerts),
        ["07cd35a6-c267-4394-a782-6a9428aea9d3"]
    );
}

#[test]
fn info_lists_each_rule_or_says_why_it_is_refused() {
    let dir = scratch("pack-info");
    let run = newterms(&["info", "--rules", text(&rule_data(LAMBDA))], b"");
    assert!(run.status.success(), "{}", run.stderr);
    for expected in [
        "07cd35a6-c267-4394-a782-6a9428aea9d3",
        "AWS Lambda Function Invoked by an Unusual Principal",
        "event.provider: \"lambda.amazonaws.com\"",
        "cloud.account.id + user.name",
        "now-7d (604800000 ms)",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected} not in {}",
            run.stdout
        );
    }
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[rule]\ntype = \"query\"\n").expect("write rule");
    let run = newterms(
        &[
            "info",
            "--rules",
            text(&bad),
            "--rules",
            text(&rule_data(LAMBDA)),
        ],
        b"",
    );
    assert!(!run.status.success());
    assert!(
        run.stdout
            .contains(&format!("refused: {}: ", bad.display())),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("1 rules loaded, 1 refused"),
        "{}",
        run.stdout
    );
    // A scan with a refused rule does not start, and names the file.
    let input = dir.join("events.ndjson");
    write_ndjson(&input, &[direct_invoke("dave", "2026-01-01T00:00:00Z")]);
    let run = newterms(&["scan", "--rules", text(&bad), text(&input)], b"");
    assert!(!run.status.success());
    assert!(
        run.stderr.contains(&bad.display().to_string()),
        "{}",
        run.stderr
    );
    // A missing file is named too.
    let missing = dir.join("missing.toml");
    let run = newterms(&["info", "--rules", text(&missing)], b"");
    assert!(!run.status.success());
    assert!(
        run.stderr.contains(&missing.display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn a_packs_state_keeps_unchanged_rules_and_says_which_start_afresh() {
    let dir = scratch("pack-state");
    let lambda = dir.join("lambda.toml");
    std::fs::copy(rule_data(LAMBDA), &lambda).expect("copy rule");
    let state = dir.join("state.bin");
    let first = dir.join("first.ndjson");
    write_ndjson(&first, &[direct_invoke("erin", "2026-01-01T00:00:00Z")]);
    let run = newterms(
        &[
            "scan",
            "--rules",
            text(&lambda),
            "--state",
            text(&state),
            text(&first),
        ],
        b"",
    );
    assert_eq!(run.alerts.len(), 1, "{}", run.stderr);
    // The same principal a day later, with another rule added: no alert, history kept.
    let second = dir.join("second.ndjson");
    write_ndjson(&second, &[direct_invoke("erin", "2026-01-02T00:00:00Z")]);
    let webshell = rule_data("persistence_webshell_detection.toml");
    let run = newterms(
        &[
            "scan",
            "--rules",
            text(&lambda),
            "--rules",
            text(&webshell),
            "--state",
            text(&state),
            text(&second),
        ],
        b"",
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.alerts.is_empty(), "{}", run.stdout);
    // The rule's query changed: its history starts afresh, and stderr says so.
    let changed = std::fs::read_to_string(&lambda)
        .expect("read rule")
        .replace("event.action: Invoke*", "event.action: Invoke");
    std::fs::write(&lambda, changed).expect("write rule");
    let third = dir.join("third.ndjson");
    write_ndjson(&third, &[direct_invoke("erin", "2026-01-03T00:00:00Z")]);
    let run = newterms(
        &[
            "scan",
            "--rules",
            text(&lambda),
            "--state",
            text(&state),
            text(&third),
        ],
        b"",
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("07cd35a6-c267-4394-a782-6a9428aea9d3 changed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("2917d495-59bd-4250-b395-c29409b76086 is no longer in the pack")
    );
    assert_eq!(run.alerts.len(), 1, "{}", run.stdout);
}

#[test]
fn field_names_of_very_many_parts_are_refused_and_those_within_the_limit_run() {
    // Hostile rule text does no more than a hostile event: a query near its 256 KiB limit whose
    // field names have 60,000 parts is refused, naming the file and why, instead of running each
    // event in time quadratic in the name; names of as many parts as allowed load, run and match.
    let dir = scratch("pack-deep-fields");
    let lambda = std::fs::read_to_string(rule_data(LAMBDA)).expect("read the Lambda rule");
    let quotes = "'''";
    let (head, rest) = lambda
        .split_once(&format!("query = {quotes}"))
        .expect("a query");
    let (_, tail) = rest.split_once(quotes).expect("the query's end");
    let with_query = |name: &str, query: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("{head}query = {quotes}\n{query}\n{quotes}{tail}"),
        )
        .expect("write rule");
        path
    };
    let hostile = vec!["a"; 60_000].join(".");
    let hostile = with_query("hostile.toml", &format!("{hostile}: x or {hostile}.b: y"));
    let deep = vec!["a"; 63].join("."); // and `{deep}.b`, 64 parts: the most allowed
    let deep_rule = with_query("deep.toml", &format!("{deep}: x or {deep}.b: y"));
    let input = dir.join("events.ndjson");
    let mut first = serde_json::Map::new();
    first.insert("@timestamp".into(), "2026-01-01T00:00:00Z".into());
    first.insert(deep.clone(), "x".into());
    first.insert(
        "cloud".into(),
        serde_json::json!({"account": {"id": "111"}}),
    );
    first.insert("user".into(), serde_json::json!({"name": "dave"}));
    let events = [
        Value::Object(first),
        serde_json::json!({"@timestamp": "2026-01-01T00:00:01Z", "a": "x"}),
    ];
    write_ndjson(&input, &events);

    let run = newterms(&["scan", "--rules", text(&hostile), text(&input)], b"");
    assert!(!run.status.success());
    assert!(
        run.stderr.contains(&hostile.display().to_string())
            && run
                .stderr
                .contains("a field name of 60000 parts, more than 64"),
        "{}",
        run.stderr
    );
    let run = newterms(&["scan", "--rules", text(&deep_rule), text(&input)], b"");
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
}
