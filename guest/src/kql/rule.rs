//! Elastic detection-rules TOML files (`rules/**.toml` of elastic/detection-rules) for `new_terms`
//! rules: what the rule is (`[rule]`), its query, term fields, history window and filters.
//!
//! Only what the rule's behaviour and its alerts need is read; other keys (`note`, `setup`,
//! `[transform]`, `investigation_fields`...) are ignored. Anything that is read and is not as
//! expected refuses the file with a [`RuleError`] that names the key (or the TOML line and column).
//!
//! The rule is read from a JSON tree ([`load_rule_tree`]): the same document as the TOML, tables as
//! objects. [`load_rule`] parses the TOML text into that tree first; a host that already parses
//! TOML may hand the tree over instead (the TOML parser is most of this module's code size in the
//! component).

use std::fmt;

use serde_json::{Map, Value as Json};

use super::eval::{CompileError, Compiled};
use super::parse::{self, ParseError, Query};
use super::pattern::{self, Pattern};
use super::require::{self, Requirement};
use crate::fields::Fields;
use crate::time::EpochMillis;

/// Largest rule file, in bytes.
pub const MAX_RULE_BYTES: usize = 1024 * 1024;
/// Most term fields of a rule (Kibana's limit).
pub const MAX_TERM_FIELDS: usize = 3;

/// Why a rule file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// Larger than [`MAX_RULE_BYTES`].
    TooLarge(usize),
    /// Not TOML.
    Toml {
        /// The parser's message.
        message: String,
        /// 1-based line.
        line: u32,
        /// 1-based column (characters).
        column: u32,
    },
    /// A required key is missing.
    Missing(&'static str),
    /// A key has the wrong type or an invalid value.
    Invalid {
        /// The key, dotted.
        key: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `type` is not `new_terms`.
    NotNewTerms(String),
    /// `language` is not `kuery`.
    Language(String),
    /// The query does not parse (line and column within the query).
    Query(ParseError),
    /// The query parses but cannot be evaluated.
    Compile(CompileError),
    /// A field name refused by [`parse::check_field_name`].
    FieldName {
        /// The key that names it, dotted.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// A filter this engine does not evaluate.
    Filter {
        /// 0-based index in `rule.filters`.
        index: usize,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(bytes) => {
                write!(f, "the file has {bytes} bytes, more than {MAX_RULE_BYTES}")
            }
            Self::Toml {
                message,
                line,
                column,
            } => write!(f, "TOML error at line {line}, column {column}: {message}"),
            Self::Missing(key) => write!(f, "missing key {key}"),
            Self::Invalid { key, expected } => write!(f, "{key} must be {expected}"),
            Self::NotNewTerms(kind) => write!(f, "rule type {kind:?} is not new_terms"),
            Self::Language(language) => write!(f, "query language {language:?} is not kuery"),
            Self::Query(error) => write!(f, "rule.query: {error}"),
            Self::Compile(error) => write!(f, "rule.query: {error}"),
            Self::FieldName { key, reason } => write!(f, "{key}: {reason}"),
            Self::Filter { index, reason } => write!(f, "rule.filters[{index}]: {reason}"),
        }
    }
}

/// A MITRE ATT&CK reference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reference {
    /// e.g. `TA0002`, `T1648`.
    pub id: String,
    /// e.g. `Execution`.
    pub name: String,
    /// URL.
    pub reference: String,
}

/// A technique and its subtechniques.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Technique {
    /// The technique.
    pub technique: Reference,
    /// Its subtechniques.
    pub subtechniques: Vec<Reference>,
}

/// One `[[rule.threat]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Threat {
    /// `MITRE ATT&CK`.
    pub framework: String,
    /// The tactic.
    pub tactic: Reference,
    /// The techniques.
    pub techniques: Vec<Technique>,
}

/// A `[[rule.filters]]` entry: an Elasticsearch query on one field, possibly negated.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The field.
    pub field: String,
    /// Whether the event must *not* match.
    pub negate: bool,
    test: FilterTest,
}

#[derive(Debug, Clone)]
enum FilterTest {
    Pattern(Pattern),
    Exact { value: String, caseless: bool },
    Exists,
}

impl Filter {
    /// Whether `document` passes the filter.
    pub fn passes(&self, document: &(impl Fields + ?Sized)) -> bool {
        let values = document.values_of(&self.field);
        let matched = match &self.test {
            FilterTest::Pattern(pattern) => values.iter().any(|value| pattern.matches(value)),
            FilterTest::Exact { value, caseless } => values.iter().any(|found| {
                if *caseless {
                    pattern::fold(found) == *value
                } else {
                    found == value
                }
            }),
            FilterTest::Exists => !values.is_empty(),
        };
        matched != self.negate
    }
}

/// A loaded `new_terms` rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `rule.rule_id`.
    pub rule_id: String,
    /// `rule.name`.
    pub name: String,
    /// `rule.version` when present.
    pub version: Option<i64>,
    /// `metadata.updated_date` when present.
    pub updated_date: Option<String>,
    /// `rule.query` as written.
    pub query_text: String,
    /// The parsed query.
    pub query: Query,
    /// The term fields, in order (1 to [`MAX_TERM_FIELDS`]).
    pub new_terms_fields: Vec<String>,
    /// `history_window_start` as written (`now-7d`).
    pub history_window_start: String,
    /// The history window.
    pub window_ms: EpochMillis,
    /// `rule.filters`.
    pub filters: Vec<Filter>,
    /// `rule.severity`.
    pub severity: String,
    /// `rule.risk_score`.
    pub risk_score: u32,
    /// `rule.threat`.
    pub threat: Vec<Threat>,
    /// `rule.tags`.
    pub tags: Vec<String>,
    /// `rule.index` (informative: a stream has no indices).
    pub index: Vec<String>,
    compiled: Compiled,
}

impl Rule {
    /// Whether `document` (ECS) matches the query and every filter.
    pub fn matches(&self, document: &serde_json::Value) -> bool {
        self.compiled.matches(document) && self.filters.iter().all(|f| f.passes(document))
    }

    /// The compiled query.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// What a matching document's text must contain (the query's requirement; filters add none).
    pub fn requirement(&self) -> Option<Requirement> {
        require::of(&self.query)
    }
}

/// Loads one rule file's text.
#[cfg(feature = "rule-toml")]
pub fn load_rule(text: &str) -> Result<Rule, RuleError> {
    if text.len() > MAX_RULE_BYTES {
        return Err(RuleError::TooLarge(text.len()));
    }
    let document: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        let at = error.span().map_or(0, |span| span.start).min(text.len());
        let before = text.get(..at).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        RuleError::Toml {
            message: error.message().trim().to_owned(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    })?;
    let mut tree = Map::new();
    for (key, value) in document {
        tree.insert(key, from_toml(value));
    }
    load_rule_tree(&tree)
}

/// A TOML value as JSON: tables as objects, date-times as their text.
#[cfg(feature = "rule-toml")]
fn from_toml(value: toml::Value) -> Json {
    match value {
        toml::Value::String(text) => Json::String(text),
        toml::Value::Integer(number) => Json::from(number),
        toml::Value::Float(number) => Json::from(number),
        toml::Value::Boolean(flag) => Json::Bool(flag),
        toml::Value::Datetime(time) => Json::String(time.to_string()),
        toml::Value::Array(items) => Json::Array(items.into_iter().map(from_toml).collect()),
        toml::Value::Table(table) => Json::Object(
            table
                .into_iter()
                .map(|(key, value)| (key, from_toml(value)))
                .collect(),
        ),
    }
}

/// Loads a rule from its document as a tree (the TOML's tables as JSON objects).
pub fn load_rule_tree(document: &Map<String, Json>) -> Result<Rule, RuleError> {
    let rule = table(document, "rule")?.ok_or(RuleError::Missing("rule"))?;
    let kind = string(rule, "rule.type", "type")?.ok_or(RuleError::Missing("rule.type"))?;
    if kind != "new_terms" {
        return Err(RuleError::NotNewTerms(kind));
    }
    let language =
        string(rule, "rule.language", "language")?.ok_or(RuleError::Missing("rule.language"))?;
    if language != "kuery" {
        return Err(RuleError::Language(language));
    }
    let query_text =
        string(rule, "rule.query", "query")?.ok_or(RuleError::Missing("rule.query"))?;
    let query = parse::parse(&query_text).map_err(RuleError::Query)?;
    let compiled = Compiled::new(&query).map_err(RuleError::Compile)?;

    let new_terms = table(rule, "new_terms")?.ok_or(RuleError::Missing("rule.new_terms"))?;
    let new_terms_fields = strings(new_terms, "rule.new_terms.value", "value")?
        .ok_or(RuleError::Missing("rule.new_terms.value"))?;
    if new_terms_fields.is_empty()
        || new_terms_fields.len() > MAX_TERM_FIELDS
        || new_terms_fields.iter().any(String::is_empty)
    {
        return Err(invalid("rule.new_terms.value", "1 to 3 field names"));
    }
    if let Some(reason) = new_terms_fields
        .iter()
        .find_map(|field| parse::check_field_name(field).err())
    {
        return Err(RuleError::FieldName {
            key: "rule.new_terms.value",
            reason,
        });
    }
    let history_window_start = history_window(new_terms)?;
    let window_ms = window(&history_window_start)
        .ok_or_else(|| invalid("rule.new_terms.history_window_start", "now-<n><s|m|h|d|w>"))?;

    let rule_id =
        string(rule, "rule.rule_id", "rule_id")?.ok_or(RuleError::Missing("rule.rule_id"))?;
    let name = string(rule, "rule.name", "name")?.ok_or(RuleError::Missing("rule.name"))?;
    let severity =
        string(rule, "rule.severity", "severity")?.ok_or(RuleError::Missing("rule.severity"))?;
    let risk_score = match rule.get("risk_score") {
        None => return Err(RuleError::Missing("rule.risk_score")),
        Some(score) if score.as_u64().is_some_and(|score| score <= 100) => {
            score.as_u64().unwrap_or_default() as u32
        }
        Some(_) => return Err(invalid("rule.risk_score", "an integer from 0 to 100")),
    };
    let version = match rule.get("version") {
        None => None,
        Some(version) if version.is_i64() => version.as_i64(),
        Some(_) => return Err(invalid("rule.version", "an integer")),
    };
    let updated_date = match table(document, "metadata")? {
        Some(metadata) => string(metadata, "metadata.updated_date", "updated_date")?,
        None => None,
    };
    Ok(Rule {
        rule_id,
        name,
        version,
        updated_date,
        query_text,
        query,
        new_terms_fields,
        history_window_start,
        window_ms,
        filters: filters(rule)?,
        severity,
        risk_score,
        threat: threats(rule)?,
        tags: strings(rule, "rule.tags", "tags")?.unwrap_or_default(),
        index: strings(rule, "rule.index", "index")?.unwrap_or_default(),
        compiled,
    })
}

fn invalid(key: &str, expected: &'static str) -> RuleError {
    RuleError::Invalid {
        key: key.to_owned(),
        expected,
    }
}

fn table<'a>(
    parent: &'a Map<String, Json>,
    key: &str,
) -> Result<Option<&'a Map<String, Json>>, RuleError> {
    match parent.get(key) {
        None => Ok(None),
        Some(Json::Object(table)) => Ok(Some(table)),
        Some(_) => Err(invalid(key, "a table")),
    }
}

fn string(parent: &Map<String, Json>, path: &str, key: &str) -> Result<Option<String>, RuleError> {
    match parent.get(key) {
        None => Ok(None),
        Some(Json::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(path, "a string")),
    }
}

fn strings(
    parent: &Map<String, Json>,
    path: &str,
    key: &str,
) -> Result<Option<Vec<String>>, RuleError> {
    match parent.get(key) {
        None => Ok(None),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| match item {
                Json::String(text) => Ok(text.clone()),
                _ => Err(invalid(path, "an array of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(path, "an array of strings")),
    }
}

/// `[[rule.new_terms.history_window_start]]` with `value`, or a plain string.
fn history_window(new_terms: &Map<String, Json>) -> Result<String, RuleError> {
    const KEY: &str = "rule.new_terms.history_window_start";
    match new_terms.get("history_window_start") {
        None => Err(RuleError::Missing(KEY)),
        Some(Json::String(text)) => Ok(text.clone()),
        Some(Json::Array(items)) => match items.as_slice() {
            [Json::Object(entry)] => string(entry, KEY, "value")?.ok_or(RuleError::Missing(KEY)),
            _ => Err(invalid(KEY, "one entry with a value")),
        },
        Some(_) => Err(invalid(KEY, "a string or one entry with a value")),
    }
}

/// `now-<n><unit>` in milliseconds; `None` for anything else or a zero or absurd window.
pub fn window(text: &str) -> Option<EpochMillis> {
    let rest = text.trim().strip_prefix("now-")?;
    let unit = rest.chars().last()?;
    let digits = &rest[..rest.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count: i64 = digits.parse().ok()?;
    let unit_ms: i64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    count.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

fn reference(entry: &Map<String, Json>, path: &str) -> Result<Reference, RuleError> {
    Ok(Reference {
        id: string(entry, path, "id")?.unwrap_or_default(),
        name: string(entry, path, "name")?.unwrap_or_default(),
        reference: string(entry, path, "reference")?.unwrap_or_default(),
    })
}

fn tables<'a>(
    parent: &'a Map<String, Json>,
    path: &str,
    key: &str,
) -> Result<Vec<&'a Map<String, Json>>, RuleError> {
    match parent.get(key) {
        None => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| match item {
                Json::Object(table) => Ok(table),
                _ => Err(invalid(path, "an array of tables")),
            })
            .collect(),
        Some(_) => Err(invalid(path, "an array of tables")),
    }
}

fn threats(rule: &Map<String, Json>) -> Result<Vec<Threat>, RuleError> {
    let mut out = Vec::new();
    for entry in tables(rule, "rule.threat", "threat")? {
        let tactic = match table(entry, "tactic")? {
            Some(tactic) => reference(tactic, "rule.threat.tactic")?,
            None => Reference::default(),
        };
        let mut techniques = Vec::new();
        for technique in tables(entry, "rule.threat.technique", "technique")? {
            techniques.push(Technique {
                technique: reference(technique, "rule.threat.technique")?,
                subtechniques: tables(
                    technique,
                    "rule.threat.technique.subtechnique",
                    "subtechnique",
                )?
                .into_iter()
                .map(|sub| reference(sub, "rule.threat.technique.subtechnique"))
                .collect::<Result<_, _>>()?,
            });
        }
        out.push(Threat {
            framework: string(entry, "rule.threat.framework", "framework")?.unwrap_or_default(),
            tactic,
            techniques,
        });
    }
    Ok(out)
}

fn filters(rule: &Map<String, Json>) -> Result<Vec<Filter>, RuleError> {
    let mut out = Vec::new();
    for (index, entry) in tables(rule, "rule.filters", "filters")?
        .into_iter()
        .enumerate()
    {
        let refuse = |reason: &str| RuleError::Filter {
            index,
            reason: reason.to_owned(),
        };
        let (negate, disabled) = match table(entry, "meta")? {
            Some(meta) => (
                flag(meta, "negate").ok_or_else(|| refuse("meta.negate must be a boolean"))?,
                flag(meta, "disabled").ok_or_else(|| refuse("meta.disabled must be a boolean"))?,
            ),
            None => (false, false),
        };
        if disabled {
            continue;
        }
        let query = table(entry, "query")?.ok_or_else(|| refuse("no query"))?;
        let [(kind, Json::Object(body))] = query.iter().collect::<Vec<_>>()[..] else {
            return Err(refuse("the query must be one query object"));
        };
        let (field, test) = match kind.as_str() {
            "exists" => match body.get("field") {
                Some(Json::String(field)) => (field.clone(), FilterTest::Exists),
                _ => return Err(refuse("exists needs a field")),
            },
            "wildcard" | "term" | "match_phrase" | "match" => {
                let [(field, spec)] = body.iter().collect::<Vec<_>>()[..] else {
                    return Err(refuse("the query must name one field"));
                };
                let (value, caseless) = match spec {
                    Json::String(value) => (value.clone(), false),
                    Json::Object(options) => {
                        let value = ["value", "wildcard", "query"]
                            .iter()
                            .find_map(|key| match options.get(*key) {
                                Some(Json::String(value)) => Some(value.clone()),
                                _ => None,
                            })
                            .ok_or_else(|| refuse("no value"))?;
                        let caseless = flag(options, "case_insensitive")
                            .ok_or_else(|| refuse("case_insensitive must be a boolean"))?;
                        (value, caseless)
                    }
                    _ => return Err(refuse("the field's query must be a string or a table")),
                };
                let test = if kind == "wildcard" {
                    FilterTest::Pattern(Pattern::elasticsearch(&value, caseless))
                } else {
                    FilterTest::Exact {
                        value: if caseless {
                            pattern::fold(&value)
                        } else {
                            value
                        },
                        caseless,
                    }
                };
                (field.clone(), test)
            }
            other => return Err(refuse(&format!("query type {other:?} is not supported"))),
        };
        parse::check_field_name(&field).map_err(|why| refuse(&why))?;
        out.push(Filter {
            field,
            negate,
            test,
        });
    }
    Ok(out)
}

/// A boolean option, `false` when absent; `None` when not a boolean.
fn flag(table: &Map<String, Json>, key: &str) -> Option<bool> {
    match table.get(key) {
        None => Some(false),
        Some(Json::Bool(value)) => Some(*value),
        Some(_) => None,
    }
}
