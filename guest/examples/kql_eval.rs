//! Evaluates every rule of a rule folder against every document of an NDJSON corpus (raw
//! CloudTrail mapped to ECS first), `PASSES` times, and prints how many (rule, document) pairs
//! matched. For timing from outside: compare `PASSES=0` (load and parse only) with `PASSES=n`.
//!
//! `cargo run --release -p newterms-guest --example kql_eval -- RULES_DIR CORPUS.ndjson PASSES [separate]`
//!
//! By default the rules run as a [`kql::Pack`] (each field read once per document for all rules);
//! `separate` runs each rule on its own.

use newterms_guest::cloudtrail;
use newterms_guest::kql;
use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(rules), Some(corpus)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: kql_eval RULES_DIR CORPUS.ndjson [PASSES]");
        std::process::exit(2);
    };
    let passes: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(1);
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(rules).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        match kql::load_rule(&text) {
            Ok(rule) => loaded.push(rule),
            Err(error) => eprintln!("{}: {error}", entry.path().display()),
        }
    }
    let text = std::fs::read_to_string(corpus).unwrap_or_default();
    let documents: Vec<Value> = text
        .lines()
        .filter_map(|line| match serde_json::from_str::<Value>(line).ok()? {
            Value::Object(object) if cloudtrail::is_raw_record(&object) => {
                Some(cloudtrail::to_ecs(&object))
            }
            other => Some(other),
        })
        .collect();
    let separate = args.get(4).is_some_and(|mode| mode == "separate");
    let mut matched = 0_u64;
    if separate {
        for _ in 0..passes {
            for document in &documents {
                for rule in &loaded {
                    matched += u64::from(rule.matches(document));
                }
            }
        }
    } else {
        let pack = match kql::Pack::new(loaded.clone()) {
            Ok(pack) => pack,
            Err(error) => {
                eprintln!("{error}");
                std::process::exit(1);
            }
        };
        let mut out = Vec::new();
        for _ in 0..passes {
            for document in &documents {
                out.clear();
                pack.matching(document, &mut out);
                matched += out.len() as u64;
            }
        }
    }
    println!(
        "{} rules, {} documents, {passes} passes, {matched} matches",
        loaded.len(),
        documents.len()
    );
}
