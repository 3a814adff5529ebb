//! For every published rule: documents derived from its query's syntax tree, one that matches and
//! near misses (each clause flipped), in three key styles, evaluated by the engine and by a plain
//! oracle over a flat field-to-values model; and the needles `kql::require` finds are in every matching text.
#![cfg(feature = "rule-toml")]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{rule_folders, toml_files};
use newterms_guest::kql::eval::{is_ip_field, kql_pattern};
use newterms_guest::kql::ip::{self, Block};
use newterms_guest::kql::parse::{Query, RangeOp, Value};
use newterms_guest::kql::pattern;
use newterms_guest::kql::{self, Pack, Rule};
use serde_json::{Map, Value as Json};

type Model = BTreeMap<String, Vec<String>>;

fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rule_folders()
        .iter()
        .flat_map(|folder| toml_files(folder))
        .collect();
    files.sort();
    files
}

/// A leaf clause: field (full path, base name for `.caseless`) and what its values must satisfy.
#[derive(Clone, Debug)]
enum Leaf {
    Exists,
    Equals(String, bool),
    Wildcard(Vec<String>, bool),
    Ip(String),
    Range(RangeOp, f64),
}

fn leaf_of(query: &Query, prefix: &str) -> Option<(String, Leaf)> {
    match query {
        Query::Is {
            field: Some(field),
            value,
        } => {
            let full = format!("{prefix}{}", field.name);
            let (base, caseless) = match full.strip_suffix(".caseless") {
                Some(base) => (base.to_owned(), true),
                None => (full, false),
            };
            let leaf = match value {
                _ if value.is_exists() => Leaf::Exists,
                Value::Literal { text, .. } if is_ip_field(&base) => Leaf::Ip(text.clone()),
                Value::Literal { text, .. } => Leaf::Equals(text.clone(), caseless),
                Value::Wildcard(parts) => Leaf::Wildcard(parts.clone(), caseless),
                Value::Null => return None,
            };
            Some((base, leaf))
        }
        Query::Range { field, op, value } => Some((
            format!("{prefix}{}", field.name),
            Leaf::Range(*op, value.parse().ok()?),
        )),
        _ => None,
    }
}

/// The oracle for one value: what each leaf means on keyword fields.
fn leaf_holds(leaf: &Leaf, value: &str) -> bool {
    match leaf {
        Leaf::Exists => true,
        Leaf::Equals(text, false) => value == text,
        Leaf::Equals(text, true) => pattern::fold(value) == pattern::fold(text),
        Leaf::Wildcard(parts, caseless) => kql_pattern(parts, *caseless).matches(value),
        Leaf::Ip(text) => Block::parse(text)
            .zip(ip::parse(value))
            .is_some_and(|(block, address)| block.contains(address)),
        Leaf::Range(op, limit) => value.parse::<f64>().is_ok_and(|n| match op {
            RangeOp::Lt => n < *limit,
            RangeOp::Lte => n <= *limit,
            RangeOp::Gt => n > *limit,
            RangeOp::Gte => n >= *limit,
        }),
    }
}

/// A value satisfying the leaf (`.caseless` ones in another case, to test folding).
fn sample(leaf: &Leaf) -> String {
    match leaf {
        Leaf::Exists => "present".into(),
        Leaf::Equals(text, false) => text.clone(),
        Leaf::Equals(text, true) => swap_case(text),
        Leaf::Wildcard(parts, caseless) => {
            let joined = parts.join("Zz");
            if *caseless {
                swap_case(&joined)
            } else {
                joined
            }
        }
        Leaf::Ip(text) => text.split('/').next().unwrap_or_default().to_owned(),
        Leaf::Range(op, limit) => match op {
            RangeOp::Lt => format!("{}", limit - 1.0),
            RangeOp::Gt => format!("{}", limit + 1.0),
            RangeOp::Lte | RangeOp::Gte => format!("{limit}"),
        },
    }
}

fn swap_case(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// The oracle: the query over a flat model (nested queries over a model of one object).
fn oracle(query: &Query, model: &Model, prefix: &str) -> bool {
    match query {
        Query::All => true,
        Query::And(parts) => parts.iter().all(|part| oracle(part, model, prefix)),
        Query::Or(parts) => parts.iter().any(|part| oracle(part, model, prefix)),
        Query::Not(part) => !oracle(part, model, prefix),
        Query::Nested { path, query } => oracle(query, model, &format!("{prefix}{}.", path.name)),
        leaf => leaf_of(leaf, prefix).is_some_and(|(field, leaf)| {
            model.get(&field).is_some_and(|values| {
                // `""` is no value, as the ingest pipeline and keyword fields have it.
                values
                    .iter()
                    .any(|value| !value.is_empty() && leaf_holds(&leaf, value))
            })
        }),
    }
}

/// What a witness asks of a field.
#[derive(Clone, Debug)]
enum Want {
    Value(String),
    NotMatching(Leaf),
}

/// Up to [`ALTERNATIVES`] sets of facts that make `query` come out as `truth` and agree with the
/// facts already chosen (`given`), searched depth-first with backtracking.
fn witnesses(
    query: &Query,
    truth: bool,
    prefix: &str,
    given: &[(String, Want)],
) -> Vec<Vec<(String, Want)>> {
    let consistent = |facts: &[(String, Want)]| {
        let mut all = given.to_vec();
        all.extend_from_slice(facts);
        model_of(&all).is_some()
    };
    match (query, truth) {
        (Query::All, true) => vec![Vec::new()],
        (Query::All, false) => Vec::new(),
        (Query::Not(part), _) => witnesses(part, !truth, prefix, given),
        (Query::Nested { path, query }, _) => {
            witnesses(query, truth, &format!("{prefix}{}.", path.name), given)
        }
        (Query::And(parts), true) | (Query::Or(parts), false) => {
            let mut out = Vec::new();
            every(parts, truth, prefix, given, Vec::new(), &mut out);
            out
        }
        (Query::And(parts), false) | (Query::Or(parts), true) => parts
            .iter()
            .flat_map(|part| witnesses(part, truth, prefix, given))
            .filter(|facts| consistent(facts))
            .take(ALTERNATIVES)
            .collect(),
        (leaf, truth) => {
            let Some((field, leaf)) = leaf_of(leaf, prefix) else {
                return Vec::new();
            };
            let facts = vec![(
                field,
                if truth {
                    Want::Value(sample(&leaf))
                } else {
                    Want::NotMatching(leaf)
                },
            )];
            if consistent(&facts) {
                vec![facts]
            } else {
                Vec::new()
            }
        }
    }
}

const ALTERNATIVES: usize = 4;

/// Every part of `parts` as `truth`, given the facts so far: depth-first over each part's
/// alternatives.
fn every(
    parts: &[Query],
    truth: bool,
    prefix: &str,
    given: &[(String, Want)],
    chosen: Vec<(String, Want)>,
    out: &mut Vec<Vec<(String, Want)>>,
) {
    let Some((first, rest)) = parts.split_first() else {
        out.push(chosen);
        return;
    };
    let mut context = given.to_vec();
    context.extend_from_slice(&chosen);
    for alternative in witnesses(first, truth, prefix, &context) {
        if out.len() >= ALTERNATIVES {
            return;
        }
        let mut next = chosen.clone();
        next.extend(alternative);
        every(rest, truth, prefix, given, next, out);
    }
}

/// The model the facts describe, or `None` when they contradict each other.
fn model_of(facts: &[(String, Want)]) -> Option<Model> {
    let mut model = Model::new();
    for (field, want) in facts {
        if let Want::Value(value) = want {
            let values = model.entry(field.clone()).or_default();
            if !values.contains(value) {
                values.push(value.clone());
            }
        }
    }
    for (field, want) in facts {
        if let Want::NotMatching(leaf) = want
            && model.get(field).is_some_and(|values| {
                values
                    .iter()
                    .any(|value| !value.is_empty() && leaf_holds(leaf, value))
            })
        {
            return None;
        }
    }
    Some(model)
}

/// The model as a JSON document: `style` 0 nests every field, 1 writes dotted keys, 2 nests the
/// first name part and dots the rest. Several values make an array; nested-query paths hold arrays
/// of one object, written nested.
fn document(model: &Model, nested_paths: &[String], style: usize) -> Json {
    let mut root = Map::new();
    for (field, values) in model {
        let value = match values.as_slice() {
            [one] => Json::String(one.clone()),
            many => Json::Array(many.iter().cloned().map(Json::String).collect()),
        };
        let path = nested_paths
            .iter()
            .filter(|path| field.starts_with(&format!("{path}.")))
            .max_by_key(|path| path.len());
        match path {
            Some(path) => {
                let rest = &field[path.len() + 1..];
                let slot = insert_nested(&mut root, path);
                if let Json::Array(items) = slot {
                    if items.is_empty() {
                        items.push(Json::Object(Map::new()));
                    }
                    if let Some(Json::Object(object)) = items.first_mut() {
                        insert(object, rest, value, style);
                    }
                }
            }
            None => insert(&mut root, field, value, style),
        }
    }
    Json::Object(root)
}

fn insert(object: &mut Map<String, Json>, field: &str, value: Json, style: usize) {
    match (style, field.split_once('.')) {
        (1, _) | (_, None) => {
            object.insert(field.to_owned(), value);
        }
        (2, Some((head, rest))) => {
            if let Json::Object(child) = object
                .entry(head.to_owned())
                .or_insert_with(|| Json::Object(Map::new()))
            {
                child.insert(rest.to_owned(), value);
            }
        }
        (_, Some((head, rest))) => {
            if let Json::Object(child) = object
                .entry(head.to_owned())
                .or_insert_with(|| Json::Object(Map::new()))
            {
                insert(child, rest, value, style);
            }
        }
    }
}

fn insert_nested<'a>(object: &'a mut Map<String, Json>, path: &str) -> &'a mut Json {
    match path.split_once('.') {
        None => object
            .entry(path.to_owned())
            .or_insert_with(|| Json::Array(Vec::new())),
        Some((head, rest)) => {
            let child = object
                .entry(head.to_owned())
                .or_insert_with(|| Json::Object(Map::new()));
            if !child.is_object() {
                *child = Json::Object(Map::new());
            }
            match child {
                Json::Object(map) => insert_nested(map, rest),
                other => other,
            }
        }
    }
}

fn nested_paths(query: &Query, prefix: &str, out: &mut Vec<String>) {
    match query {
        Query::And(parts) | Query::Or(parts) => {
            for part in parts {
                nested_paths(part, prefix, out);
            }
        }
        Query::Not(part) => nested_paths(part, prefix, out),
        Query::Nested { path, query } => {
            let full = format!("{prefix}{}", path.name);
            nested_paths(query, &format!("{full}."), out);
            out.push(full);
        }
        _ => {}
    }
}

fn contains_needle(rule: &Rule, text: &str) -> bool {
    let Some(needles) = rule.requirement().and_then(|r| r.any_of(&|_| true)) else {
        return true;
    };
    let lower = text.to_ascii_lowercase();
    needles.iter().any(|needle| {
        if needle.case_insensitive {
            lower.contains(&needle.text)
        } else {
            text.contains(&needle.text)
        }
    })
}

#[test]
fn every_rule_agrees_with_the_oracle_on_matches_and_near_misses() {
    let files = rule_files();
    assert!(files.len() >= 5);
    let (mut rules, mut near_misses, mut rejected, mut with_needles) = (0, 0, 0, 0);
    let loaded: Vec<Rule> = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            kql::load_rule(&text).unwrap_or_else(|error| panic!("{}: {error}", file.display()))
        })
        .collect();
    let pack = Pack::new(loaded.clone()).unwrap_or_else(|error| panic!("{error}"));
    for (file, rule) in files.iter().zip(&loaded) {
        let name = file.display();
        let facts = witnesses(&rule.query, true, "", &[])
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{name}: no matching document derived"));
        let model = model_of(&facts).unwrap_or_default();
        assert!(
            oracle(&rule.query, &model, ""),
            "{name}: the witness {model:?}"
        );
        let mut paths = Vec::new();
        nested_paths(&rule.query, "", &mut paths);
        for style in 0..3 {
            let doc = document(&model, &paths, style);
            assert!(rule.compiled().matches(&doc), "{name}: should match {doc}");
            // The pack, reading each field once for all rules, decides as each rule alone.
            let mut by_pack = Vec::new();
            pack.matching(&doc, &mut by_pack);
            let alone: Vec<usize> = (0..loaded.len())
                .filter(|at| loaded[*at].matches(&doc))
                .collect();
            assert_eq!(by_pack, alone, "{name}: {doc}");
            assert!(
                contains_needle(rule, &doc.to_string()),
                "{name}: needles not in {doc}"
            );
        }
        with_needles += usize::from(
            rule.requirement()
                .and_then(|r| r.any_of(&|_| true))
                .is_some(),
        );

        // Near misses: each fact flipped (a value removed, changed, or a forbidden one given).
        let mut variants: Vec<Model> = Vec::new();
        for (field, want) in &facts {
            match want {
                Want::Value(value) => {
                    let mut without = model.clone();
                    if let Some(values) = without.get_mut(field) {
                        values.retain(|found| found != value);
                        if values.is_empty() {
                            without.remove(field);
                        }
                    }
                    variants.push(without);
                    let mut changed = model.clone();
                    if let Some(values) = changed.get_mut(field) {
                        for found in values.iter_mut().filter(|found| *found == value) {
                            *found = format!("~{found}~");
                        }
                    }
                    variants.push(changed);
                }
                Want::NotMatching(leaf) => {
                    let mut given = model.clone();
                    given.entry(field.clone()).or_default().push(sample(leaf));
                    variants.push(given);
                }
            }
        }
        let mut rule_rejected = 0;
        for variant in &variants {
            let expected = oracle(&rule.query, variant, "");
            rule_rejected += usize::from(!expected);
            for style in 0..3 {
                let doc = document(variant, &paths, style);
                assert_eq!(
                    rule.compiled().matches(&doc),
                    expected,
                    "{name}: near miss {doc}"
                );
                if expected {
                    assert!(
                        contains_needle(rule, &doc.to_string()),
                        "{name}: needles not in {doc}"
                    );
                }
            }
            near_misses += 1;
        }
        assert!(rule_rejected > 0, "{name}: no near miss is rejected");
        rejected += rule_rejected;
        rules += 1;
    }
    eprintln!(
        "{rules} rules, {near_misses} near misses ({rejected} rejected), {with_needles} with needles"
    );
}

/// The witness of `rule`, with a value for each term field it lacks and an event time: a document
/// the detector can raise an alert for.
fn with_terms_and_time(rule: &Rule, model: &Model, time: &str, tag: usize) -> Model {
    let mut model = model.clone();
    for (at, field) in rule.new_terms_fields.iter().enumerate() {
        model
            .entry(field.clone())
            .or_insert_with(|| vec![format!("term-{tag}-{at}")]);
    }
    model.insert("@timestamp".to_owned(), vec![time.to_owned()]);
    model
}

fn rule_ids_of(alerts: &[String]) -> Vec<String> {
    alerts
        .iter()
        .map(|alert| {
            let alert: Json = serde_json::from_str(alert).unwrap_or_default();
            alert["kibana"]["alert"]["rule"]["rule_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn the_pack_detector_raises_each_rule_on_its_documents_and_not_on_near_misses() {
    use newterms_guest::{Config, RulePackDetector};
    let files = rule_files();
    let loaded: Vec<Rule> = files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            kql::load_rule(&text).unwrap_or_else(|error| panic!("{}: {error}", file.display()))
        })
        .collect();
    let new_detector = || {
        RulePackDetector::new(
            Pack::new(loaded.clone()).unwrap_or_else(|error| panic!("{error}")),
            Config::default(),
        )
        .unwrap_or_else(|error| panic!("{error}"))
    };
    // One detector dispatches (and reads raw records by its fast path), the other evaluates every
    // rule on every event: same alerts.
    let (mut dispatching, mut exact) = (new_detector(), new_detector());
    // Each document 400 days after the last, beyond every rule's window: every term is new again.
    let mut day: i64 = 0;
    let mut next_time = || {
        day += 400;
        newterms_guest::time::format_iso8601(946_684_800_000 + day * 86_400_000)
    };
    let (mut raised, mut quiet) = (0, 0);
    for (tag, (file, rule)) in files.iter().zip(&loaded).enumerate() {
        let name = file.display();
        let facts = witnesses(&rule.query, true, "", &[])
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{name}: no matching document derived"));
        let model = model_of(&facts).unwrap_or_default();
        let mut paths = Vec::new();
        nested_paths(&rule.query, "", &mut paths);
        let mut documents = vec![with_terms_and_time(rule, &model, &next_time(), tag)];
        for (field, want) in &facts {
            if let Want::Value(value) = want {
                let mut changed = model.clone();
                if let Some(values) = changed.get_mut(field) {
                    for found in values.iter_mut().filter(|found| *found == value) {
                        *found = format!("~{found}~");
                    }
                }
                documents.push(with_terms_and_time(rule, &changed, &next_time(), tag));
            }
        }
        for model in &documents {
            for style in 0..3 {
                let doc = document(model, &paths, style);
                let text = doc.to_string();
                let alerts = dispatching
                    .process(&text)
                    .unwrap_or_else(|error| panic!("{name}: {error} on {text}"));
                let reference = exact.process_exact(&text).unwrap_or_default();
                assert_eq!(alerts, reference, "{name}: dispatch changed {text}");
                let ids = rule_ids_of(&alerts);
                if rule.matches(&doc) {
                    // The first key style is the first time this term is seen in this window.
                    if style == 0 {
                        assert!(ids.contains(&rule.rule_id), "{name}: no alert for {text}");
                        raised += 1;
                    }
                } else {
                    assert!(!ids.contains(&rule.rule_id), "{name}: alert for {text}");
                    quiet += 1;
                }
            }
        }
    }
    eprintln!("{raised} documents raised their rule, {quiet} near misses did not");
    assert!(raised >= loaded.len() * 9 / 10, "only {raised} raised");
}

/// The raw CloudTrail record whose mapping (`cloudtrail::MAPPING`) gives the model's fields, or
/// `None` when raw CloudTrail cannot say it (a field the mapping does not fill, a constant with
/// another value, a computed field).
fn raw_record(model: &Model) -> Option<Map<String, Json>> {
    use newterms_guest::cloudtrail::{Derivation, MAPPING};
    fn put(record: &mut Map<String, Json>, path: &[&str], value: Json) -> Option<()> {
        let (last, parents) = path.split_last()?;
        let mut object = record;
        for key in parents {
            let child = object
                .entry((*key).to_owned())
                .or_insert_with(|| Json::Object(Map::new()));
            object = child.as_object_mut()?;
        }
        // Two model fields on one raw field must agree.
        match object.get(*last) {
            Some(known) if *known != value => None,
            _ => {
                object.insert((*last).to_owned(), value);
                Some(())
            }
        }
    }
    let text = |values: &[String]| match values {
        [one] => Json::String(one.clone()),
        many => Json::Array(many.iter().cloned().map(Json::String).collect()),
    };
    let mut record = Map::new();
    record.insert("eventVersion".to_owned(), "1.08".into());
    let mut outcome = None;
    let mut flags = false;
    for (field, values) in model {
        let (row, rest) = MAPPING.iter().find_map(|row| {
            if field == row.ecs {
                Some((row, ""))
            } else {
                field
                    .strip_prefix(&format!("{}.", row.ecs))
                    .map(|rest| (row, rest))
            }
        })?;
        match (row.derivation, rest) {
            (Derivation::First(sources), "") => put(&mut record, sources[0].path(), text(values))?,
            (Derivation::IpAddress(source), "") => {
                if !values
                    .iter()
                    .all(|value| value.parse::<std::net::IpAddr>().is_ok())
                {
                    return None;
                }
                put(&mut record, source.path(), text(values))?
            }
            (Derivation::Constant(constant), "") if values == &[constant.to_owned()] => {}
            (Derivation::Outcome(_), "") => outcome = Some(values.clone()),
            (Derivation::Flattened(source), rest) if !rest.is_empty() => {
                let mut path = source.path().to_vec();
                path.extend(rest.split('.'));
                put(&mut record, &path, text(values))?
            }
            (Derivation::ConsoleLoginFlag(within, key), "") => {
                let answer = match values.as_slice() {
                    [flag] if flag == "false" => "No",
                    [flag] if flag == "true" => "Yes",
                    _ => return None,
                };
                let mut path = within.path().to_vec();
                path.push(key);
                put(&mut record, &path, answer.into())?;
                flags = true;
            }
            (Derivation::ResourceList(source), "arn" | "account_id" | "type") => {
                let key = match rest {
                    "arn" => "ARN",
                    "account_id" => "accountId",
                    other => other,
                };
                let list = record
                    .entry(source.path()[0].to_owned())
                    .or_insert_with(|| Json::Array(Vec::new()));
                let items = list.as_array_mut()?;
                for (at, value) in values.iter().enumerate() {
                    if items.len() <= at {
                        items.push(Json::Object(Map::new()));
                    }
                    items[at]
                        .as_object_mut()?
                        .insert(key.to_owned(), value.clone().into());
                }
            }
            _ => return None,
        }
    }
    let sign_in = record.get("eventName").and_then(Json::as_str) == Some("ConsoleLogin");
    if flags && !sign_in {
        return None;
    }
    if let Some(outcome) = outcome {
        let failed = record.contains_key("errorCode") || record.contains_key("errorMessage");
        match (outcome.as_slice(), sign_in) {
            ([one], true) if one == "success" || one == "failure" => {
                let answer = if one == "success" {
                    "Success"
                } else {
                    "Failure"
                };
                put(
                    &mut record,
                    &["responseElements", "ConsoleLogin"],
                    answer.into(),
                )?;
            }
            ([one], false) if one == "failure" && !failed => {
                record.insert("errorMessage".to_owned(), "generated failure".into());
            }
            ([one], false) if one == "success" && !failed => {}
            ([one], false) if one == "failure" => {}
            _ => return None,
        }
    }
    Some(record)
}

/// Every CloudTrail rule's matching document and near misses, as raw CloudTrail records where raw
/// CloudTrail can say them: the mapping gives back every field the rule reads, the rule decides as
/// on the ECS document, and the pack detector (fast or full path, each dispatching)
/// raises the rule exactly when it matches.
#[test]
fn cloudtrail_rules_decide_raw_records_as_their_ecs_documents() {
    use newterms_guest::{Config, RulePackDetector, cloudtrail, fields};
    let files = rule_files();
    let loaded: Vec<(String, Rule)> = files
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let rule = kql::load_rule(&text).unwrap_or_else(|error| panic!("{error}"));
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            rule.query_text
                .contains("aws.cloudtrail")
                .then_some((name, rule))
        })
        .collect();
    assert!(loaded.len() >= 5, "{} CloudTrail rules", loaded.len());
    let rules: Vec<Rule> = loaded.iter().map(|(_, rule)| rule.clone()).collect();
    let new_detector = || {
        RulePackDetector::new(
            Pack::new(rules.clone()).unwrap_or_else(|error| panic!("{error}")),
            Config::default(),
        )
        .unwrap_or_else(|error| panic!("{error}"))
    };
    let (mut dispatching, mut exact) = (new_detector(), new_detector());
    let mut day: i64 = 0;
    let (mut raised, mut quiet, mut unsayable) = (0, 0, 0);
    for (tag, (name, rule)) in loaded.iter().enumerate() {
        let facts = witnesses(&rule.query, true, "", &[])
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{name}: no matching document derived"));
        let model = model_of(&facts).unwrap_or_default();
        let mut models = vec![model.clone()];
        for (field, want) in &facts {
            if let Want::Value(value) = want {
                let mut changed = model.clone();
                if let Some(values) = changed.get_mut(field) {
                    for found in values.iter_mut().filter(|found| *found == value) {
                        *found = format!("~{found}~");
                    }
                }
                models.push(changed);
                let mut without = model.clone();
                without.remove(field);
                models.push(without);
            }
        }
        for model in &models {
            day += 400;
            let time = newterms_guest::time::format_iso8601(946_684_800_000 + day * 86_400_000);
            let mut model = with_terms_and_time(rule, model, &time, tag);
            let at = model.remove("@timestamp").unwrap_or_default();
            // Raw CloudTrail has IP fields only for addresses: an address stands for a witness's
            // "any value" (the oracle below decides on the model as changed).
            for (field, values) in model.iter_mut() {
                if is_ip_field(field) {
                    for value in values.iter_mut() {
                        if value.parse::<std::net::IpAddr>().is_err() && !value.contains('/') {
                            *value = "192.0.2.1".to_owned();
                        }
                    }
                }
            }
            let Some(mut record) = raw_record(&model) else {
                unsayable += 1;
                continue;
            };
            record.insert("eventTime".to_owned(), Json::from(at[0].clone()));
            let ecs = cloudtrail::to_ecs(&record);
            // The fields the rule reads come back as the model has them, or raw CloudTrail cannot
            // say this model (a constant or computed field the mapping adds).
            let read = rule
                .compiled()
                .fields()
                .into_iter()
                .chain(rule.new_terms_fields.clone());
            let round_trips = read.into_iter().all(|field| {
                let mut ours: Vec<String> = fields::values(&ecs, &field)
                    .into_iter()
                    .map(|v| v.into_owned())
                    .collect();
                ours.sort();
                let mut theirs = model.get(&field).cloned().unwrap_or_default();
                theirs.sort();
                ours == theirs
            });
            if !round_trips {
                unsayable += 1;
                continue;
            }
            let expected = oracle(&rule.query, &model, "");
            assert_eq!(rule.matches(&ecs), expected, "{name}: {ecs}");
            let text = Json::Object(record).to_string();
            let alerts = dispatching
                .process(&text)
                .unwrap_or_else(|error| panic!("{name}: {error} on {text}"));
            assert_eq!(
                alerts,
                exact.process_exact(&text).unwrap_or_default(),
                "{name}: {text}"
            );
            let ids = rule_ids_of(&alerts);
            assert_eq!(ids.contains(&rule.rule_id), expected, "{name}: {text}");
            if expected {
                raised += 1;
            } else {
                quiet += 1;
            }
        }
    }
    eprintln!(
        "raw CloudTrail: {raised} raised their rule, {quiet} near misses did not, {unsayable} not sayable in raw CloudTrail"
    );
    assert!(
        raised >= loaded.len() * 8 / 10,
        "only {raised} of {} rules raised on raw records",
        loaded.len()
    );
    assert!(quiet >= loaded.len(), "only {quiet} near misses");
}
