//! What a document must have for a query to match it: literals its text must contain, each naming
//! its field (tests hold the built-in rule's needle to the one its query requires); the values of a
//! field one of which it must have, and the fields it must have a value of (a rule pack's dispatch
//! lists rules by the first and leaves out, on raw CloudTrail, rules that need a field no raw
//! record has).
//!
//! # Why it is sound
//! A clause `field: "text"` (or a wildcard value) can only hold when some value of the field holds
//! the text. A value equal to text that has a character outside `0-9 . e E + -` is a JSON string or
//! boolean (numbers are rendered back from their parsed value, so their spelling may differ), and a
//! JSON string holds its content verbatim except for escapes. So a needle is a run of the value
//! without `"`, `\`, `/` or control characters (which escapes may spell differently), with at least
//! one such non-numeric character: if the document's text has no `\u` escape and lacks the needle,
//! the clause cannot hold. Case-insensitive clauses (`.caseless`) give ASCII-only needles, to be
//! searched ASCII-case-insensitively. IP and range clauses, `not`, and `field: *` give none.
//!
//! The needle names its field: a consumer reading raw CloudTrail must use only needles whose field
//! the raw-to-ECS mapping copies verbatim ([`crate::cloudtrail::copies_verbatim`]).

use super::eval::is_ip_field;
use super::parse::{Field, Query, Value};

/// A text the document must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needle {
    /// The ECS field whose value holds it (full path, base name for `.caseless`).
    pub field: String,
    /// The text.
    pub text: String,
    /// Whether to search ASCII-case-insensitively (the text is then lowercase ASCII).
    pub case_insensitive: bool,
}

/// What a matching document's text must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// This needle.
    Needle(Needle),
    /// Every part.
    All(Vec<Requirement>),
    /// At least one part.
    Any(Vec<Requirement>),
}

/// The requirement of `query`; `None` when nothing is required.
pub fn of(query: &Query) -> Option<Requirement> {
    requirement(query, "")
}

fn requirement(query: &Query, prefix: &str) -> Option<Requirement> {
    match query {
        Query::All | Query::Not(_) | Query::Range { .. } => None,
        Query::And(parts) => {
            let parts: Vec<Requirement> = parts
                .iter()
                .filter_map(|part| requirement(part, prefix))
                .collect();
            match parts.len() {
                0 => None,
                1 => parts.into_iter().next(),
                _ => Some(Requirement::All(parts)),
            }
        }
        Query::Or(parts) => {
            let parts: Option<Vec<Requirement>> =
                parts.iter().map(|part| requirement(part, prefix)).collect();
            Some(Requirement::Any(parts?))
        }
        Query::Nested { path, query } => requirement(query, &format!("{prefix}{}.", path.name)),
        Query::Is { field, value } => {
            let field = field.as_ref()?;
            if field.wildcard {
                return None;
            }
            let full = format!("{prefix}{}", field.name);
            let (base, caseless) = match full.strip_suffix(".caseless") {
                Some(base) => (base.to_owned(), true),
                None => (full, false),
            };
            if is_ip_field(&base) || value.is_exists() {
                return None;
            }
            let runs: Vec<&str> = match value {
                Value::Literal { text, .. } => vec![text.as_str()],
                Value::Wildcard(parts) => parts.iter().map(String::as_str).collect(),
                Value::Null => return None,
            };
            let best = runs
                .iter()
                .flat_map(|run| plain_runs(run, caseless))
                .max_by_key(|run| run.chars().count())?;
            Some(Requirement::Needle(Needle {
                field: base,
                text: if caseless {
                    best.to_ascii_lowercase()
                } else {
                    best
                },
                case_insensitive: caseless,
            }))
        }
    }
}

/// The values of `field` one of which `query` requires (as an exact, case-sensitive keyword
/// match: `field: "value"`), when it requires one; `None` when a document without any of them may
/// match. Among the parts of an `and`, the fewest values; an `or` requires one of its parts'.
pub fn required_values(query: &Query, field: &str) -> Option<Vec<String>> {
    match query {
        Query::Is {
            field: Some(name),
            value: Value::Literal { text, .. },
        } if !name.wildcard && name.name == field && !is_ip_field(field) => {
            Some(vec![text.clone()])
        }
        Query::And(parts) => parts
            .iter()
            .filter_map(|part| required_values(part, field))
            .min_by_key(Vec::len),
        Query::Or(parts) => {
            let mut values = Vec::new();
            for part in parts {
                values.extend(required_values(part, field)?);
            }
            Some(values)
        }
        _ => None,
    }
}

/// Whether every document `query` matches has a value of some field that `field` accepts (its full
/// path, the base name for `.caseless`): a field it compares, tests for existence or ranges over,
/// in every part of an `or` or some part of an `and`. A `not` requires nothing.
pub fn requires_value_of(query: &Query, field: &dyn Fn(&str) -> bool) -> bool {
    requires_value_under(query, "", field)
}

fn requires_value_under(query: &Query, prefix: &str, field: &dyn Fn(&str) -> bool) -> bool {
    let named = |name: &Field| {
        let full = format!("{prefix}{}", name.name);
        !name.wildcard && field(full.strip_suffix(".caseless").unwrap_or(&full))
    };
    match query {
        Query::All | Query::Not(_) | Query::Is { field: None, .. } => false,
        Query::Is {
            field: Some(name), ..
        }
        | Query::Range { field: name, .. } => named(name),
        Query::And(parts) => parts
            .iter()
            .any(|part| requires_value_under(part, prefix, field)),
        Query::Or(parts) => parts
            .iter()
            .all(|part| requires_value_under(part, prefix, field)),
        Query::Nested { path, query } => {
            !path.wildcard && requires_value_under(query, &format!("{prefix}{}.", path.name), field)
        }
    }
}

/// The maximal runs of `text` made of characters a JSON string spells verbatim (ASCII only when
/// `ascii_only`), keeping those with a character no number spelling has.
fn plain_runs(text: &str, ascii_only: bool) -> Vec<String> {
    let breaks = |c: char| {
        c == '"' || c == '\\' || c == '/' || c.is_control() || (ascii_only && !c.is_ascii())
    };
    text.split(breaks)
        .filter(|run| {
            run.chars()
                .any(|c| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
        })
        .map(str::to_owned)
        .collect()
}

impl Requirement {
    /// One set of needles of which a matching document contains at least one, using only needles
    /// that `usable` accepts; `None` when no such set can be formed. Among the parts of an
    /// [`Requirement::All`], the most selective set is chosen: long needles, few of them.
    pub fn any_of(&self, usable: &dyn Fn(&Needle) -> bool) -> Option<Vec<Needle>> {
        match self {
            Requirement::Needle(needle) => usable(needle).then(|| vec![needle.clone()]),
            Requirement::Any(parts) => {
                let mut out = Vec::new();
                for part in parts {
                    for needle in part.any_of(usable)? {
                        if !out.contains(&needle) {
                            out.push(needle);
                        }
                    }
                }
                Some(out)
            }
            Requirement::All(parts) => parts
                .iter()
                .filter_map(|part| part.any_of(usable))
                .max_by_key(|set| {
                    let shortest = set.iter().map(|n| n.text.len()).min().unwrap_or(0);
                    (shortest.min(8), std::cmp::Reverse(set.len()), shortest)
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kql::parse;

    #[test]
    fn the_fields_a_query_needs_a_value_of() {
        let needs = |query: &str| {
            let query = parse(query).unwrap_or_else(|error| panic!("{error}"));
            requires_value_of(&query, &|field| field == "a.b")
        };
        for query in [
            "a.b: x",
            "a.b: *",
            "a.b.caseless: x",
            "a.b >= 3",
            "c: x and a.b: 10.0.0.0/8",
            "a.b: x or (c: y and a.b: z)",
            "a: { b: x }",
        ] {
            assert!(needs(query), "{query}");
        }
        for query in [
            "not a.b: x",
            "a.b: x or c: y",
            "a.*: x",
            "x",
            "c: *",
            "a.b.c: x",
        ] {
            assert!(!needs(query), "{query}");
        }
    }
}
