//! Many rules over one document: every field any rule reads is read from the document once, in a
//! field table shared by the rules' compiled queries; and a dispatch that tells, by the event's
//! API call, service, source or kind, which rules may match it (the values of
//! [`super::require::required_values`]).

use std::collections::HashMap;

use serde_json::Value as Json;

use super::eval::{CompileError, Compiled, Document, EvalScratch, FieldTable, SlotReader};
use super::require::{required_values, requires_value_of};
use super::rule::Rule;
use crate::cloudtrail::{self, Derivation, MAPPING, Mapping, RawField};
use crate::fastpath::{RawFields, Slot};
use crate::fields::Fields;
use crate::lookup::Table;
use crate::sparse::SparseFields;

/// Rules evaluated together.
pub struct Pack {
    rules: Vec<Rule>,
    compiled: Vec<Compiled>,
    fields: FieldTable,
    /// Per field of the table: where a raw CloudTrail record holds it.
    raw_fields: Vec<RawSource>,
    /// Per rule, per term field: where a raw CloudTrail record holds it.
    raw_terms: Vec<Vec<RawSource>>,
    dispatch: Dispatch,
}

/// The ECS fields whose values pick the rules to evaluate on a raw record, in the order a rule is
/// listed under the first of them it requires a value of: the API call, which almost every
/// CloudTrail rule names, then the service (`event.action: Invoke*` names no API call, but
/// `event.provider: "lambda.amazonaws.com"` a service).
const RAW_KEYS: [&str; 2] = ["event.action", "event.provider"];

/// The ECS fields whose values pick the rules to evaluate on a document, as [`RAW_KEYS`] for raw
/// records: the API call, then the data source, then the kind of event. Of Elastic's 221
/// published rules, 3 require a value of none of them (each of the others requires one of 130
/// event.action, 54 data_stream.dataset, 25 event.category, ...), so a document is evaluated by the
/// rules of its source and kind only.
const DOCUMENT_KEYS: [&str; 5] = [
    "event.action",
    "data_stream.dataset",
    "event.dataset",
    "event.category",
    "host.os.type",
];

/// Whether a pack dispatches events on the values of `field` ([`RAW_KEYS`], [`DOCUMENT_KEYS`]): a
/// rule's test of it holds on nearly every event the rule is dispatched for.
pub(super) fn is_dispatch_key(field: &str) -> bool {
    RAW_KEYS.contains(&field) || DOCUMENT_KEYS.contains(&field)
}

/// The rules that may match an event: on a raw record by its [`RAW_KEYS`] values, among the rules
/// a raw record may match at all; on a document by its [`DOCUMENT_KEYS`] values.
struct Dispatch {
    /// For raw records, with where a raw record holds each key field.
    raw: Keyed,
    raw_keys: Vec<RawSource>,
    /// For any document.
    documents: Keyed,
}

/// Rules of a pack, each under the values of the first key field it requires one of, or among
/// those that require none.
struct Keyed {
    /// Per key field some rule requires values of: the rules listed under each value.
    by_key: Vec<(&'static str, Table<Vec<usize>>)>,
    /// The rules that require a value of no key field.
    any: Vec<usize>,
}

impl Keyed {
    /// The rules `listed`, by `keys`.
    fn new(rules: &[Rule], keys: &[&'static str], listed: impl Fn(usize) -> bool) -> Self {
        let mut by_key: Vec<(&'static str, HashMap<String, Vec<usize>>)> =
            keys.iter().map(|&key| (key, HashMap::new())).collect();
        let mut any = Vec::new();
        for (index, rule) in rules.iter().enumerate().filter(|&(index, _)| listed(index)) {
            let keyed = by_key
                .iter_mut()
                .find_map(|(key, listing)| Some((listing, required_values(&rule.query, key)?)));
            let Some((listing, values)) = keyed else {
                any.push(index);
                continue;
            };
            for value in values {
                let listed = listing.entry(value).or_default();
                if listed.last() != Some(&index) {
                    listed.push(index);
                }
            }
        }
        let by_key = by_key
            .into_iter()
            // Only the keys some rule is listed by are read.
            .filter(|(_, listing)| !listing.is_empty())
            .map(|(key, listing)| {
                let listing = listing
                    .into_iter()
                    .map(|(value, rules)| (value.into(), rules));
                (key, Table::new(listing))
            })
            .collect();
        Self { by_key, any }
    }

    /// The key fields some rule is listed by.
    fn fields(&self) -> impl Iterator<Item = &str> {
        self.by_key.iter().map(|(field, _)| *field)
    }

    /// Lists in `out` the rules for an event whose values of the key fields are `values_of`
    /// each (`None`: it cannot tell, and then `out` means nothing).
    fn list<I>(
        &self,
        rules: usize,
        mut values_of: impl FnMut(usize, &str) -> Option<I>,
        out: &mut Candidates,
    ) -> Option<()>
    where
        I: IntoIterator<Item: AsRef<str>>,
    {
        out.clear(rules);
        out.add(&self.any);
        for (key, (field, listing)) in self.by_key.iter().enumerate() {
            for value in values_of(key, field)? {
                if let Some(rules) = listing.get(value.as_ref()) {
                    out.add(rules);
                }
            }
        }
        out.listed.sort_unstable();
        Some(())
    }
}

/// Whether a raw CloudTrail record may match `rule`: not when its query needs a value of a field
/// no raw record has (`process.name`), or one of some values of a field that the mapping sets to
/// another constant (`data_stream.dataset: "okta.system"`).
fn may_match_raw(rule: &Rule) -> bool {
    let never = |field: &str| matches!(RawSource::of(field), RawSource::Never);
    !requires_value_of(&rule.query, &never)
        && MAPPING.iter().all(|row| match row.derivation {
            Derivation::Constant(constant) => required_values(&rule.query, row.ecs)
                .is_none_or(|values| values.iter().any(|value| value == constant)),
            _ => true,
        })
}

impl Dispatch {
    fn new(rules: &[Rule]) -> Self {
        let possible: Vec<bool> = rules.iter().map(may_match_raw).collect();
        let raw = Keyed::new(rules, &RAW_KEYS, |index| {
            possible.get(index).copied().unwrap_or(true)
        });
        let raw_keys = raw.fields().map(RawSource::of).collect();
        Self {
            raw,
            raw_keys,
            documents: Keyed::new(rules, &DOCUMENT_KEYS, |_| true),
        }
    }
}

/// Where the ECS document [`cloudtrail::to_ecs`] makes of a raw record holds an ECS field.
#[derive(Debug, Clone)]
pub enum RawSource {
    /// The field a row of the mapping copies from one raw field: that field as the scan kept it
    /// (what [`RawFields::derive`] gives for the row, without looking at the row).
    Raw(RawField),
    /// The field a row of the mapping fills with a constant.
    Constant(&'static str),
    /// The field a row of the mapping fills otherwise.
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
            return match row.derivation {
                Derivation::First(&[source]) => Self::Raw(source),
                Derivation::Constant(value) => Self::Constant(value),
                _ => Self::Row(row),
            };
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
    #[inline(always)]
    pub fn value<'a>(&self, fields: &RawFields<'a>) -> Option<Option<&'a str>> {
        let slot = match self {
            Self::Raw(source) => fields.raw(*source),
            Self::Constant(value) => Some(Slot::Text(value)),
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

impl Pack {
    /// The rules, their queries compiled against one field table.
    pub fn new(rules: Vec<Rule>) -> Result<Self, CompileError> {
        let mut fields = FieldTable::default();
        let compiled = rules
            .iter()
            .map(|rule| Compiled::new_in(&rule.query, &mut fields))
            .collect::<Result<_, _>>()?;
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

    /// Every field that matching a document reads (the queries', the filters' and the dispatch
    /// fields) and the rules' term fields.
    pub fn read_fields(&self) -> Vec<&str> {
        let queries = self.fields.names().iter().map(String::as_str);
        let filters = self.rules.iter().flat_map(|rule| &rule.filters);
        let terms = self.rules.iter().flat_map(|rule| &rule.new_terms_fields);
        queries
            .chain(filters.map(|filter| filter.field.as_str()))
            .chain(self.dispatch.documents.fields())
            .chain(terms.map(String::as_str))
            .collect()
    }

    /// Appends to `out` the index of every rule whose query and filters `document` (ECS) matches.
    pub fn matching(&self, document: &Json, out: &mut Vec<usize>) {
        self.matching_among(document, None, out);
    }

    /// [`Pack::matching`] among the rules `candidates` lists (all when `None`).
    pub fn matching_among(
        &self,
        document: &Json,
        candidates: Option<&Candidates>,
        out: &mut Vec<usize>,
    ) {
        let mut shared = Document::new(document, &self.fields);
        self.matching_in(&mut shared, document, candidates, out);
    }

    /// [`Pack::matching_among`] on the fields of a document, without the document (a sparse
    /// reading, see [`crate::sparse`]; `numbers` has the number in its reach of each field of
    /// [`Pack::fields`]): `false` when a rule got as far as a nested query, which needs the
    /// document, and then `out` means nothing.
    /// `scratch` is space kept between documents (see [`Document::from_sparse`]).
    pub fn matching_among_sparse(
        &self,
        document: &SparseFields<'_>,
        numbers: &[Option<u32>],
        candidates: &Candidates,
        out: &mut Vec<usize>,
        scratch: &mut EvalScratch,
    ) -> bool {
        let mut shared =
            Document::from_sparse(document, numbers, &self.fields, std::mem::take(scratch));
        let decided = self.matching_in(&mut shared, document, Some(candidates), out);
        *scratch = shared.into_scratch();
        decided
    }

    /// The rules among `candidates` that `shared` (the fields of `document`) matches; whether it
    /// could tell.
    fn matching_in(
        &self,
        shared: &mut Document<'_>,
        document: &dyn Fields,
        candidates: Option<&Candidates>,
        out: &mut Vec<usize>,
    ) -> bool {
        let mut evaluate = |index: usize| {
            let (Some(rule), Some(compiled)) = (self.rules.get(index), self.compiled.get(index))
            else {
                return;
            };
            if compiled.matches_in(shared)
                && rule.filters.iter().all(|filter| filter.passes(document))
            {
                out.push(index);
            }
        };
        match candidates {
            Some(candidates) => candidates.listed.iter().copied().for_each(&mut evaluate),
            None => (0..self.rules.len()).for_each(&mut evaluate),
        }
        shared.decided()
    }

    /// [`Pack::matching_among`] for the raw CloudTrail record that `fields` was scanned from (as
    /// the ECS document `to_ecs` makes of it), without that document, among the rules `candidates`
    /// lists ([`Pack::dispatched`] for it): `false` when the scan cannot tell (a field it does not
    /// keep, a value that is not a string, a nested query, or a matching rule with filters), and
    /// then `out` means nothing.
    /// `scratch` is space kept between records (see [`Document::from_slots`]).
    pub fn matching_raw(
        &self,
        fields: &RawFields<'_>,
        candidates: &Candidates,
        out: &mut Vec<usize>,
        scratch: &mut EvalScratch,
    ) -> bool {
        let read = RawReader {
            sources: &self.raw_fields,
            fields,
        };
        let mut shared = Document::from_slots(&read, &self.fields, std::mem::take(scratch));
        let mut decided = true;
        for &index in &candidates.listed {
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
        *scratch = shared.into_scratch();
        decided
    }

    /// Lists in `out` the rules that may match the ECS document `document` by its
    /// [`DOCUMENT_KEYS`] values (any rule that requires none, and those requiring one of them);
    /// returns whether any may. A rule not listed cannot match: it requires a value the document
    /// does not have.
    pub fn dispatched_document(
        &self,
        document: &(impl Fields + ?Sized),
        out: &mut Candidates,
    ) -> bool {
        let listed = self.dispatch.documents.list(
            self.rules.len(),
            |_, field| Some(document.values_of(field)),
            out,
        );
        listed.is_some() && !out.listed.is_empty()
    }

    /// Where a raw CloudTrail record holds each term field of rule `index`.
    pub fn raw_terms(&self, index: usize) -> &[RawSource] {
        self.raw_terms.get(index).map_or(&[], Vec::as_slice)
    }

    /// [`Pack::dispatched_document`] for the raw CloudTrail record `fields` was scanned from,
    /// without its document: the rules that may match it, by its [`RAW_KEYS`] values, among those
    /// that may match a raw record at all; whether any may. `None` (and `out` means nothing) when
    /// the scan cannot tell a key's value.
    pub fn dispatched(&self, fields: &RawFields<'_>, out: &mut Candidates) -> Option<bool> {
        self.dispatch.raw.list(
            self.rules.len(),
            |key, _| self.dispatch.raw_keys.get(key)?.value(fields),
            out,
        )?;
        Some(!out.listed.is_empty())
    }
}

/// The values of a raw record's fields by slot of the pack's field table, for its evaluation:
/// read where each is (`sources`, by slot) in what the scan kept (`fields`), inside the
/// evaluation of each test rather than in a call of its own.
struct RawReader<'p, 'a> {
    sources: &'p [RawSource],
    fields: &'p RawFields<'a>,
}

impl<'a> SlotReader<'a> for RawReader<'_, 'a> {
    #[inline(always)]
    fn read(&self, slot: usize) -> Option<Option<&'a str>> {
        self.sources.get(slot)?.value(self.fields)
    }
}

/// The rules an event may match (by their place in the pack), as dispatch lists them: only
/// those are evaluated, so that an event costs the rules of its kind and not the whole pack.
#[derive(Debug, Default)]
pub struct Candidates {
    /// Per rule of the pack: listed.
    marked: Vec<bool>,
    /// The listed rules, in pack order once dispatch is done.
    listed: Vec<usize>,
}

impl Candidates {
    /// Whether rule `index` is listed.
    pub fn contains(&self, index: usize) -> bool {
        self.marked.get(index).copied().unwrap_or_default()
    }

    /// The listed rules, in pack order.
    pub fn listed(&self) -> &[usize] {
        &self.listed
    }

    /// None listed, for a pack of `rules`: only the last event's marks are undone.
    fn clear(&mut self, rules: usize) {
        for &index in &self.listed {
            if let Some(mark) = self.marked.get_mut(index) {
                *mark = false;
            }
        }
        self.listed.clear();
        self.marked.resize(rules, false);
    }

    /// Lists each of `rules` not listed yet.
    fn add(&mut self, rules: &[usize]) {
        for &index in rules {
            if let Some(mark) = self.marked.get_mut(index)
                && !*mark
            {
                *mark = true;
                self.listed.push(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kql::parse;

    fn required(query: &str) -> Option<Vec<String>> {
        let query = parse(query).unwrap_or_else(|error| panic!("{error}"));
        required_values(&query, "event.action")
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

    /// A row's field read as its raw field or its constant is what the row derives, on records
    /// holding each raw field as a string, blank, `null`, a number, an object, or not at all.
    #[test]
    fn a_copied_field_reads_as_its_row_derives() {
        let values = [r#""v""#, r#""""#, "null", "7", r#"{"k":"v"}"#];
        let mut compared = 0;
        for row in MAPPING {
            let source = RawSource::of(row.ecs);
            let Derivation::First(&[raw]) = row.derivation else {
                if let Derivation::Constant(constant) = row.derivation {
                    assert!(matches!(source, RawSource::Constant(c) if c == constant));
                }
                continue;
            };
            assert!(
                matches!(source, RawSource::Raw(r) if r == raw),
                "{}",
                row.ecs
            );
            for value in values.iter().map(Some).chain([None]) {
                // The raw field at its place (nested as its path says) in an otherwise plain record.
                let member = value.map(|value| {
                    raw.path()
                        .iter()
                        .rev()
                        .fold((*value).to_owned(), |inner, key| {
                            format!(r#"{{"{key}":{inner}}}"#)
                        })
                });
                let extra = member
                    .as_deref()
                    .and_then(|member| member.strip_prefix('{')?.strip_suffix('}'))
                    .map_or(String::new(), |member| format!(",{member}"));
                let record = format!(
                    r#"{{"eventVersion":"1.08","eventTime":"2024-01-01T00:00:00Z","eventSource":"s","eventName":"n"{extra}}}"#
                );
                let Some(fields) = crate::fastpath::scan(&record) else {
                    continue;
                };
                let derived = match fields.derive(row) {
                    Some(Slot::Text(text)) => Some(Some(text)),
                    Some(Slot::Absent) => Some(None),
                    Some(Slot::Other) | None => None,
                };
                assert_eq!(source.value(&fields), derived, "{}: {record}", row.ecs);
                compared += 1;
            }
        }
        assert!(compared > 50, "{compared}");
    }

    #[test]
    fn where_a_raw_record_holds_a_field() {
        assert!(matches!(
            RawSource::of("event.action"),
            RawSource::Raw(RawField::EventName)
        ));
        // Derived from two raw fields, the first one present.
        assert!(matches!(RawSource::of("user.name"), RawSource::Row(_)));
        assert!(matches!(RawSource::of("host.name"), RawSource::Never));
        assert!(matches!(RawSource::of("process.name"), RawSource::Never));
        // A constant of the data stream: every raw record has it.
        assert!(matches!(
            RawSource::of("event.dataset"),
            RawSource::Constant("aws.cloudtrail")
        ));
        // Above a row (an object) and beneath one: only the full path knows.
        assert!(matches!(
            RawSource::of("aws.cloudtrail"),
            RawSource::Unknown
        ));
        assert!(matches!(RawSource::of("source.ip.x"), RawSource::Unknown));
    }
}
