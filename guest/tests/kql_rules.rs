//! Elastic's `new_terms` rule files: every one loads, and the built-in rule given as its TOML decides
//! as the hand-written detector does.

use std::path::{Path, PathBuf};

use newterms_guest::kql::{self, RuleError};
use newterms_guest::{Config, Detector, Profile, cloudtrail};
use serde_json::Value;

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

fn copied_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/elastic-rules")
}

fn toml_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn load(path: &Path) -> Result<kql::Rule, RuleError> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    kql::load_rule(&text)
}

#[test]
fn every_published_new_terms_rule_loads() {
    let mut folders = vec![copied_rules()];
    folders.extend(shared("elastic-rules/new_terms"));
    for folder in folders {
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

    let mut corpora = vec![
        repo().join("examples/lambda-invocations.ndjson"),
        repo().join("tests/fixtures/cloudtrail/lambda_invoke.ndjson"),
    ];
    corpora.extend(shared("cloudtrail/CORPUS_lambda_invoke.ndjson"));
    corpora.extend(shared("cloudtrail/CORPUS_mixed_all.ndjson"));
    let (mut documents, mut matched) = (0, 0);
    for corpus in corpora {
        let text = std::fs::read_to_string(&corpus).unwrap_or_default();
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
