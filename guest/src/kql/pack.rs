//! Many rules over one document: every field any rule reads is read from the document once, in a
//! field table shared by the rules' compiled queries; and a prefilter that tells, in one pass over an
//! event's text, which rules may match it (the needles of [`super::require`]).

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde_json::Value as Json;

use super::eval::{CompileError, Compiled, Document, FieldTable};
use super::require::{Needle, Requirement, required_values};
use super::rule::Rule;
use crate::cloudtrail::{self, Derivation, MAPPING, Mapping, RawField};
use crate::fastpath::{RawFields, Slot};

/// Rules evaluated together.
pub struct Pack {
    rules: Vec<Rule>,
    compiled: Vec<Compiled>,
    fields: FieldTable,
    prefilter: Prefilter,
    /// Per field of the table: where a raw CloudTrail record holds it.
    raw_fields: Vec<RawSource>,
    /// Per rule, per term field: where a raw CloudTrail record holds it.
    raw_terms: Vec<Vec<RawSource>>,
    dispatch: Dispatch,
}

/// The ECS field whose value picks the rules to evaluate on a raw record: the API call, which
/// almost every CloudTrail rule names.
const DISPATCH_FIELD: &str = "event.action";

/// The rules that may match an event, by its [`DISPATCH_FIELD`] value: a rule whose query requires
/// one of some values of it is listed under each of them; the others under every value.
struct Dispatch {
    /// Per value: the rules requiring it and those requiring none, in pack order.
    by_value: HashMap<String, Vec<usize>>,
    /// The rules that require no value.
    any: Vec<usize>,
    source: RawSource,
}

/// Whether every document meeting `requirement` has a value of a field that `field` accepts.
fn requires_field(requirement: &Requirement, field: &dyn Fn(&str) -> bool) -> bool {
    match requirement {
        Requirement::Needle(needle) => field(&needle.field),
        Requirement::All(parts) => parts.iter().any(|part| requires_field(part, field)),
        Requirement::Any(parts) => parts.iter().all(|part| requires_field(part, field)),
    }
}

impl Dispatch {
    fn new(rules: &[Rule]) -> Self {
        // A rule that needs a value of a field no raw record has is listed nowhere.
        let possible: Vec<bool> = rules
            .iter()
            .map(|rule| {
                rule.requirement().is_none_or(|requirement| {
                    !requires_field(&requirement, &|field| {
                        matches!(RawSource::of(field), RawSource::Never)
                    })
                })
            })
            .collect();
        let required: Vec<Option<Vec<String>>> = rules
            .iter()
            .map(|rule| required_values(&rule.query, DISPATCH_FIELD))
            .collect();
        let listed = |index: usize| possible.get(index).copied().unwrap_or(true);
        let any: Vec<usize> = (0..rules.len())
            .filter(|&index| listed(index) && required.get(index).is_some_and(Option::is_none))
            .collect();
        let mut by_value: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, values) in required.iter().enumerate() {
            if !listed(index) {
                continue;
            }
            for value in values.iter().flatten() {
                let listed = by_value.entry(value.clone()).or_insert_with(|| any.clone());
                if !listed.contains(&index) {
                    listed.push(index);
                }
            }
        }
        for listed in by_value.values_mut() {
            listed.sort_unstable();
        }
        Self {
            by_value,
            any,
            source: RawSource::of(DISPATCH_FIELD),
        }
    }

    /// The rules that may match the raw record `fields` was scanned from; `None` when the scan
    /// cannot tell its value.
    fn rules(&self, fields: &RawFields<'_>) -> Option<&[usize]> {
        Some(match self.source.value(fields)? {
            Some(value) => self.by_value.get(value).unwrap_or(&self.any),
            None => &self.any,
        })
    }
}

/// Where the ECS document [`cloudtrail::to_ecs`] makes of a raw record holds an ECS field.
#[derive(Debug, Clone)]
pub enum RawSource {
    /// The field a row of the mapping fills.
    Row(&'static Mapping),
    /// A member (no dot in its name) of the flattened copy of a raw object (a
    /// [`Derivation::Flattened`] row's).
    Flattened(RawField, Box<str>),
    /// A member (no dot in its name) of the resources of a raw list (a [`Derivation::ResourceList`]
    /// row's), as `aws.cloudtrail.resources.arn` reads it.
    Resource(RawField, Box<str>),
    /// No row fills the field or anything above or beneath it: a raw record never has it.
    Never,
    /// Above or beneath a row: left to the full path.
    Unknown,
}

impl RawSource {
    /// Where `to_ecs` puts the ECS field `field`.
    pub fn of(field: &str) -> Self {
        if let Some(row) = cloudtrail::mapping(field) {
            return Self::Row(row);
        }
        let member_of = MAPPING.iter().find_map(|row| {
            let member = field.strip_prefix(row.ecs)?.strip_prefix('.')?;
            match row.derivation {
                _ if member.contains('.') => None,
                Derivation::Flattened(object) => Some(Self::Flattened(object, member.into())),
                Derivation::ResourceList(list) => Some(Self::Resource(list, member.into())),
                _ => None,
            }
        });
        if let Some(source) = member_of {
            return source;
        }
        let beneath = |outer: &str, inner: &str| {
            inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('.'))
        };
        if MAPPING
            .iter()
            .any(|row| beneath(field, row.ecs) || beneath(row.ecs, field))
        {
            Self::Unknown
        } else {
            Self::Never
        }
    }

    /// The field's value (`Some(None)`: none; a raw record's fields have at most one) in the ECS
    /// document of the record `fields` was scanned from; `None` when the scan cannot tell.
    pub fn value<'a>(&self, fields: &RawFields<'a>) -> Option<Option<&'a str>> {
        let slot = match self {
            Self::Row(row) => fields.derive(row),
            Self::Flattened(object, member) => fields.flattened(*object, member),
            Self::Resource(list, member) => fields.resource(*list, member),
            Self::Never => return Some(None),
            Self::Unknown => return None,
        };
        match slot? {
            Slot::Text(text) => Some(Some(text)),
            Slot::Absent => Some(None),
            Slot::Other => None,
        }
    }
}

/// Which rules may match a text: each rule needs one of its needles, or is always a candidate.
struct Prefilter {
    /// All rules' needles, searched ASCII-case-insensitively in one pass; `None` when no rule has any.
    searcher: Option<AhoCorasick>,
    /// Per needle of the searcher: its text, and whether it must match case-sensitively.
    needles: Vec<(Vec<u8>, bool)>,
    /// Per rule: what its text must contain, over needle indices; `None` when nothing is required.
    per_rule: Vec<Option<Needed>>,
}

/// A rule's requirement over the searcher's needles: every part of an `All`, one of an `Any`.
#[derive(Debug, Clone)]
enum Needed {
    Needle(usize),
    All(Vec<Needed>),
    Any(Vec<Needed>),
}

impl Needed {
    /// `requirement` with its needles numbered in `needles` (added when new); needles `usable`
    /// refuses are dropped (an `All` without them, an `Any` with one of them requires nothing).
    fn of(
        requirement: &Requirement,
        usable: &dyn Fn(&Needle) -> bool,
        needles: &mut Vec<(Vec<u8>, bool)>,
    ) -> Option<Self> {
        match requirement {
            Requirement::Needle(needle) => {
                if !usable(needle) {
                    return None;
                }
                let key = (needle.text.as_bytes().to_vec(), !needle.case_insensitive);
                let index = needles
                    .iter()
                    .position(|known| *known == key)
                    .unwrap_or_else(|| {
                        needles.push(key);
                        needles.len() - 1
                    });
                Some(Self::Needle(index))
            }
            Requirement::All(parts) => {
                let parts: Vec<Self> = parts
                    .iter()
                    .filter_map(|part| Self::of(part, usable, needles))
                    .collect();
                (!parts.is_empty()).then_some(Self::All(parts))
            }
            Requirement::Any(parts) => parts
                .iter()
                .map(|part| Self::of(part, usable, needles))
                .collect::<Option<Vec<Self>>>()
                .map(Self::Any),
        }
    }

    fn holds(&self, found: &[bool]) -> bool {
        match self {
            Self::Needle(index) => found.get(*index).copied().unwrap_or(true),
            Self::All(parts) => parts.iter().all(|part| part.holds(found)),
            Self::Any(parts) => parts.iter().any(|part| part.holds(found)),
        }
    }
}

impl Pack {
    /// The rules, their queries compiled against one field table.
    pub fn new(rules: Vec<Rule>) -> Result<Self, CompileError> {
        let mut fields = FieldTable::default();
        let compiled = rules
            .iter()
            .map(|rule| Compiled::new_in(&rule.query, &mut fields))
            .collect::<Result<_, _>>()?;
        let prefilter = Prefilter::new(&rules);
        let raw_fields = fields
            .names()
            .iter()
            .map(|field| RawSource::of(field))
            .collect();
        let raw_terms = rules
            .iter()
            .map(|rule| {
                rule.new_terms_fields
                    .iter()
                    .map(|field| RawSource::of(field))
                    .collect()
            })
            .collect();
        let dispatch = Dispatch::new(&rules);
        Ok(Self {
            rules,
            compiled,
            fields,
            prefilter,
            raw_fields,
            raw_terms,
            dispatch,
        })
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The distinct fields the rules' queries read.
    pub fn fields(&self) -> &[String] {
        self.fields.names()
    }

    /// Appends to `out` the index of every rule whose query and filters `document` (ECS) matches.
    pub fn matching(&self, document: &Json, out: &mut Vec<usize>) {
        self.matching_among(document, None, out);
    }

    /// [`Pack::matching`] among the rules `candidates` marks (all when `None`).
    pub fn matching_among(
        &self,
        document: &Json,
        candidates: Option<&[bool]>,
        out: &mut Vec<usize>,
    ) {
        let mut shared = Document::new(document, &self.fields);
        for (index, (rule, compiled)) in self.rules.iter().zip(&self.compiled).enumerate() {
            if candidates.is_some_and(|marks| !marks.get(index).copied().unwrap_or(true)) {
                continue;
            }
            if compiled.matches_in(&mut shared)
                && rule.filters.iter().all(|filter| filter.passes(document))
            {
                out.push(index);
            }
        }
    }

    /// [`Pack::matching`] for the raw CloudTrail record that `fields` was scanned from (as the
    /// ECS document `to_ecs` makes of it), without that document: `false` when the scan cannot tell
    /// (a field it does not keep, a value that is not a string, a nested query, or a matching rule
    /// with filters), and then `out` means nothing.
    /// `memo` is scratch space, kept between records so that evaluating one allocates nothing.
    pub fn matching_raw(
        &self,
        fields: &RawFields<'_>,
        out: &mut Vec<usize>,
        memo: &mut Vec<u8>,
    ) -> bool {
        let Some(rules) = self.dispatch.rules(fields) else {
            return false;
        };
        let read = |slot: usize| self.raw_fields.get(slot)?.value(fields);
        let mut shared = Document::from_slots(&read, &self.fields, std::mem::take(memo));
        let mut decided = true;
        for &index in rules {
            let (Some(rule), Some(compiled)) = (self.rules.get(index), self.compiled.get(index))
            else {
                continue;
            };
            if compiled.matches_in(&mut shared) {
                // Filters read the JSON document.
                if !rule.filters.is_empty() {
                    decided = false;
                    break;
                }
                out.push(index);
            }
        }
        let decided = decided && shared.decided();
        *memo = shared.into_memo();
        decided
    }

    /// Where a raw CloudTrail record holds each term field of rule `index`.
    pub fn raw_terms(&self, index: usize) -> &[RawSource] {
        self.raw_terms.get(index).map_or(&[], Vec::as_slice)
    }

    /// Marks in `out` (one entry per rule) the rules that may match the event whose JSON text is
    /// `text` (an ECS document or a raw CloudTrail record); returns whether any may. A rule not
    /// marked cannot match (see [`super::require`] for why that is sound).
    pub fn candidates(&self, text: &[u8], out: &mut Vec<bool>) -> bool {
        self.prefilter.candidates(text, out)
    }

    /// [`Pack::candidates`] for the raw CloudTrail record `fields` was scanned from, without
    /// searching its text: the rules [`Pack::matching_raw`] evaluates on it (by its `event.action`),
    /// which include every rule that may match it. `None` (and `out` means nothing) when the scan
    /// cannot tell its `event.action`.
    pub fn dispatched(&self, fields: &RawFields<'_>, out: &mut Vec<bool>) -> Option<bool> {
        let rules = self.dispatch.rules(fields)?;
        out.clear();
        out.resize(self.rules.len(), false);
        for &index in rules {
            if let Some(mark) = out.get_mut(index) {
                *mark = true;
            }
        }
        Some(!rules.is_empty())
    }
}

impl Prefilter {
    fn new(rules: &[Rule]) -> Self {
        // Needles usable whatever the event is: raw CloudTrail spells only some ECS fields' values.
        let usable = |needle: &Needle| cloudtrail::spelled_in_raw_text(&needle.field);
        let mut needles: Vec<(Vec<u8>, bool)> = Vec::new();
        let per_rule = rules
            .iter()
            .map(|rule| Needed::of(&rule.requirement()?, &usable, &mut needles))
            .collect();
        let searcher = (!needles.is_empty())
            .then(|| {
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(needles.iter().map(|(text, _)| text))
                    .ok()
            })
            .flatten();
        // Without a searcher (it cannot fail on these few needles, but if it did) every rule is a
        // candidate.
        let per_rule = if searcher.is_some() {
            per_rule
        } else {
            vec![None; rules.len()]
        };
        Self {
            searcher,
            needles,
            per_rule,
        }
    }

    fn candidates(&self, text: &[u8], out: &mut Vec<bool>) -> bool {
        out.clear();
        // A `\u` escape may spell any character of a value: every rule is a candidate.
        let escaped = memchr::memmem::find(text, b"\\u").is_some();
        let searcher = match &self.searcher {
            Some(searcher) if !escaped => searcher,
            _ => {
                out.resize(self.per_rule.len(), true);
                return !out.is_empty();
            }
        };
        let mut found = vec![false; self.needles.len()];
        for hit in searcher.find_overlapping_iter(text) {
            let index = hit.pattern().as_usize();
            let Some((needle, case_sensitive)) = self.needles.get(index) else {
                continue;
            };
            if !case_sensitive || text.get(hit.range()) == Some(needle.as_slice()) {
                found[index] = true;
            }
        }
        let mut any = false;
        out.extend(self.per_rule.iter().map(|needles| {
            let candidate = needles.as_ref().is_none_or(|needed| needed.holds(&found));
            any |= candidate;
            candidate
        }));
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kql::parse;

    fn required(query: &str) -> Option<Vec<String>> {
        let query = parse(query).unwrap_or_else(|error| panic!("{error}"));
        required_values(&query, DISPATCH_FIELD)
    }

    #[test]
    fn a_rule_is_dispatched_by_the_api_calls_it_requires() {
        assert_eq!(
            required(r#"event.provider: x and event.action: ("A" or B) and not event.action: C"#),
            Some(vec!["A".to_owned(), "B".to_owned()])
        );
        // The fewest values among the parts of an `and`; every part of an `or` must name some.
        assert_eq!(
            required("event.action: (A or B or C) and (event.action: A or event.action: D)"),
            Some(vec!["A".to_owned(), "D".to_owned()])
        );
        assert_eq!(required("event.action: A or user.name: x"), None);
        // Wildcards, negations, existence and other fields name no value.
        for query in [
            "event.action: Invoke*",
            "not event.action: A",
            "event.action: *",
            "event.action.caseless: a",
            "event.provider: x",
        ] {
            assert_eq!(required(query), None, "{query}");
        }
    }

    #[test]
    fn where_a_raw_record_holds_a_field() {
        assert!(matches!(RawSource::of("event.action"), RawSource::Row(_)));
        assert!(matches!(RawSource::of("host.name"), RawSource::Never));
        assert!(matches!(RawSource::of("process.name"), RawSource::Never));
        // A constant of the data stream: every raw record has it.
        assert!(matches!(RawSource::of("event.dataset"), RawSource::Row(_)));
        // Above a row (an object) and beneath one: only the full path knows.
        assert!(matches!(
            RawSource::of("aws.cloudtrail"),
            RawSource::Unknown
        ));
        assert!(matches!(RawSource::of("source.ip.x"), RawSource::Unknown));
    }
}
