//! Rules from Elastic rule files, many at once, in one pass over each event: a plain raw CloudTrail
//! record is read by the fast path without a parse; any other event is parsed (and raw CloudTrail
//! mapped to ECS) once. The rules its `event.action` dispatches to ([`crate::kql::Pack::dispatched`],
//! [`crate::kql::Pack::dispatched_document`]) are evaluated over one shared field table, and each
//! matching rule's terms go to that rule's own history and window.
//!
//! State is per rule: [`RulePackDetector::snapshot`] writes one snapshot of the history format per
//! rule, identified by the rule id and a signature of what decides its terms (query, filters' count,
//! term fields, version), so that a restore keeps the history of every rule still in the pack and
//! unchanged, and reports the others ([`Notice`]).

use std::borrow::Cow;
use std::num::NonZeroUsize;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::alert::{AlertSource, rule_file_alert};
use crate::cloudtrail;
use crate::detector::config;
use crate::detector::full::{TIME_FIELD, event_time, raw_event_time, with_ecs};
use crate::detector::terms::combinations_of_fields;
use crate::detector::{Config, ConfigError, EventError, Footprint, LineError, LineOutcome, Stats};
use crate::fastpath::{self, Indexed, QuoteIndex};
use crate::fields::Fields;
use crate::history::{History, Known, TermKey};
use crate::kql::eval::EvalScratch;
use crate::kql::pack::Candidates;
use crate::kql::{Pack, Rule};
use crate::snapshot::{self, Identity, RestoreError};
use crate::sparse::{Reach, SparseFields};
use crate::time;

mod stages;

/// The rule id a pack reports as a whole (each alert carries its own rule's).
pub const PACK_RULE_ID: &str = "rule-pack";

/// Magic of a pack's state: a sequence of per-rule snapshots.
pub const PACK_MAGIC: &[u8; 8] = b"NTRMPACK";

/// What the fast path found in a record (see [`RulePackDetector::fast_terms`]).
enum FastFound {
    /// Only the full path can tell.
    Undecided,
    /// No rule matches.
    NoMatch,
    /// Some rules match, at this time; their terms are in the detector's scratch.
    Matched(time::EpochMillis),
    /// Some rules match, and the event is refused (its time cannot be read).
    Refused(EventError),
}

/// What a matching event observes before the histories (see [`RulePackDetector::observed`]).
enum Observed<'a> {
    /// An exception dropped it.
    Excepted,
    /// Its time, and per matching rule with a term (by its place in the pack) every combination of
    /// its term fields' values.
    Terms(time::EpochMillis, Vec<(usize, Vec<Vec<Cow<'a, str>>>)>),
}

/// A rule of the pack with its history.
struct Tracked {
    /// The rule id and a digest of what decides its terms (see [`identity_of`]).
    state_id: String,
    /// The term fields, as the history format spells them.
    signature: String,
    history: History,
}

/// What a restore did with a rule's history that it did not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The state has history of a rule no longer in the pack: dropped.
    Removed(String),
    /// The rule's query, term fields or version changed: its history starts afresh.
    Changed(String),
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Removed(id) => write!(
                f,
                "rule {id} is no longer in the pack: its history is dropped"
            ),
            Self::Changed(id) => write!(
                f,
                "rule {id} changed (query, filters, term fields or version): its history starts afresh"
            ),
        }
    }
}

/// Many rules from rule files and their histories.
pub struct RulePackDetector {
    pack: Pack,
    tracked: Vec<Tracked>,
    config: Config,
    capacity: NonZeroUsize,
    stats: Stats,
    candidates: Candidates,
    matching: Vec<usize>,
    /// Scratch of the fast path: the record's quotes, and the matching rules' terms (rule, end of
    /// its key in `term_bytes`).
    quotes: QuoteIndex,
    /// Scratch of the evaluations without a JSON document, the fast path's and the sparse
    /// reading's: values and the tests' answers (see `kql::eval::Document::from_slots`).
    eval_scratch: EvalScratch,
    /// Set by the fast path when it declines a raw record it read: whether any rule may match it,
    /// with `candidates` listed by dispatch (the full path then needs no dispatch of its own).
    dispatched: Option<bool>,
    term_ends: Vec<(usize, usize)>,
    term_bytes: Vec<u8>,
    /// Where each of those terms is in its rule's history, once found known.
    known: Vec<Option<Known>>,
    /// What the rules read of an ECS document (see [`crate::sparse`]), and the space its values
    /// are read into.
    reach: Reach,
    /// The number in `reach` of each field the queries read (by slot of the pack's field table).
    sparse_numbers: Vec<Option<u32>>,
    sparse_scratch: Vec<(u32, &'static str)>,
    /// Events the fast path decided.
    fast_events: u64,
    /// ECS documents decided on their sparse reading.
    sparse_events: u64,
    /// A snapshot being read in pieces, and how much of it was read; any event ends it.
    snapshot_pieces: Option<(Vec<u8>, usize)>,
    /// A restore being written in pieces: its announced length and the bytes so far.
    restore_pieces: Option<(u64, Vec<u8>)>,
    /// What the last restore did not keep.
    notices: Vec<Notice>,
}

impl RulePackDetector {
    /// A detector for `pack` under `config` (its capacity is per rule; profile and window are the
    /// built-in rule's and do not apply: each rule has its own window).
    pub fn new(pack: Pack, config: Config) -> Result<Self, ConfigError> {
        let capacity = config.validate()?;
        let tracked = pack
            .rules()
            .iter()
            .map(|rule| Tracked {
                state_id: identity_of(rule),
                signature: term_signature(rule),
                history: History::new(capacity, config.hash_key),
            })
            .collect();
        let exceptions = config.exceptions.iter().map(|e| e.field.as_str());
        let reach = Reach::new(
            pack.read_fields()
                .into_iter()
                .chain([TIME_FIELD])
                .chain(exceptions),
        );
        let sparse_numbers = pack
            .fields()
            .iter()
            .map(|field| reach.field_number(field))
            .collect();
        Ok(Self {
            reach,
            sparse_numbers,
            eval_scratch: EvalScratch::default(),
            sparse_scratch: Vec::new(),
            pack,
            tracked,
            config,
            capacity,
            stats: Stats::default(),
            candidates: Candidates::default(),
            matching: Vec::new(),
            quotes: QuoteIndex::default(),
            dispatched: None,
            term_ends: Vec::new(),
            known: Vec::new(),
            term_bytes: Vec::new(),
            fast_events: 0,
            sparse_events: 0,
            snapshot_pieces: None,
            restore_pieces: None,
            notices: Vec::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The rules.
    pub fn pack(&self) -> &Pack {
        &self.pack
    }

    /// Counters (terms and evictions summed over the rules).
    pub fn stats(&self) -> Stats {
        Stats {
            terms: self.tracked.iter().map(|t| t.history.len() as u64).sum(),
            evictions: self.tracked.iter().map(|t| t.history.evictions()).sum(),
            ..self.stats
        }
    }

    /// How many events the fast path decided (the rest went through the full path).
    pub fn fast_path_events(&self) -> u64 {
        self.fast_events
    }

    /// How many ECS documents were decided on their sparse reading, without the parser (see
    /// [`crate::sparse`]).
    pub fn sparse_path_events(&self) -> u64 {
        self.sparse_events
    }

    /// Terms in the history of each rule, in pack order.
    pub fn terms_per_rule(&self) -> Vec<usize> {
        self.tracked.iter().map(|t| t.history.len()).collect()
    }

    /// Processes one event (JSON text) and returns the alerts it raises, rule after rule in pack
    /// order.
    pub fn process(&mut self, text: &str) -> Result<Vec<String>, EventError> {
        self.stats.events += 1;
        if let Some(outcome) = self.decided_quietly(text.as_bytes(), false, None) {
            self.fast_events += 1;
            return outcome;
        }
        self.process_full(text, None)
    }

    /// [`RulePackDetector::process`] once the fast path declined: the full path, unless the fast path
    /// read the record and no rule is dispatched for it. `indexed`: the quote index holds `text`'s.
    fn process_full(
        &mut self,
        text: &str,
        indexed: Option<Indexed<'_>>,
    ) -> Result<Vec<String>, EventError> {
        if self.nothing_dispatched() {
            return Ok(Vec::new());
        }
        let outcome = match self.sparse_outcome(text, indexed) {
            Some(outcome) => {
                self.sparse_events += 1;
                outcome
            }
            None => self.evaluate(text, true),
        };
        self.count(&outcome);
        outcome
    }

    /// The full path's outcome ([`RulePackDetector::evaluate`]) for an ECS document that raises no
    /// alert, from its sparse reading ([`RulePackDetector::with_sparse`]), with the same effect on
    /// counters and histories; `None`, with nothing changed, when only the full path can tell
    /// (as for `with_sparse`, and when a term is new, since its alert holds the whole document, or
    /// a rule has several terms in it).
    fn sparse_outcome(
        &mut self,
        text: &str,
        indexed: Option<Indexed<'_>>,
    ) -> Option<Result<Vec<String>, EventError>> {
        self.with_sparse(text, indexed, |detector, fields, matching| {
            detector.snapshot_pieces = None;
            detector.observe_sparse(fields, matching)
        })
    }

    /// `then` on the values of the rules' fields that one validating pass over the ECS document
    /// `text` finds ([`fastpath::scan_sparse`], [`crate::sparse`]) and the rules they match (marked
    /// in `candidates` by dispatch); `None` when only the full path can tell: the pass declines the
    /// document or it is raw CloudTrail (when the fast path dispatched, it read the record as raw),
    /// or a rule gets as far as a nested query. `indexed`: the quote index holds `text`'s.
    fn with_sparse<'t, R>(
        &mut self,
        text: &'t str,
        indexed: Option<Indexed<'t>>,
        then: impl FnOnce(&mut Self, &SparseFields<'_>, &[usize]) -> Option<R>,
    ) -> Option<R> {
        if self.dispatched.is_some() {
            return None;
        }
        let reach = std::mem::take(&mut self.reach);
        let scratch = std::mem::take(&mut self.sparse_scratch);
        let found = fastpath::scan_sparse(text, &mut self.quotes, indexed, &reach, scratch)
            .and_then(|fields| {
                self.mark_candidates(&fields);
                let mut matching = std::mem::take(&mut self.matching);
                matching.clear();
                let decided = self.pack.matching_among_sparse(
                    &fields,
                    &self.sparse_numbers,
                    &self.candidates,
                    &mut matching,
                    &mut self.eval_scratch,
                );
                let found = if decided {
                    then(self, &fields, &matching)
                } else {
                    None
                };
                self.matching = matching;
                self.sparse_scratch = fields.into_scratch();
                found
            });
        self.reach = reach;
        found
    }

    /// [`RulePackDetector::raise`] on a sparse document when no term is new: each matching rule's
    /// term goes to its history as the fast path's do ([`RulePackDetector::observe_if_known`]).
    fn observe_sparse(
        &mut self,
        document: &SparseFields<'_>,
        matching: &[usize],
    ) -> Option<Result<Vec<String>, EventError>> {
        if matching.is_empty() {
            return Some(Ok(Vec::new()));
        }
        let (time, terms) = match self.observed(document, matching) {
            Ok(Observed::Terms(time, terms)) => (time, terms),
            Ok(Observed::Excepted) => {
                self.stats.matched += 1;
                self.stats.excepted += 1;
                return Some(Ok(Vec::new()));
            }
            Err(error) => {
                self.stats.matched += 1;
                return Some(Err(error));
            }
        };
        // One term per rule, so that each history is looked up once before any is changed.
        if terms.iter().any(|(_, combinations)| combinations.len() > 1) {
            return None;
        }
        self.term_ends.clear();
        self.term_bytes.clear();
        for (index, combinations) in &terms {
            for values in combinations {
                TermKey::append(
                    &mut self.term_bytes,
                    values.iter().map(|value| value.as_ref()),
                );
                self.term_ends.push((*index, self.term_bytes.len()));
            }
        }
        self.observe_if_known(time).then(|| Ok(Vec::new()))
    }

    /// Whether the fast path read the record it declined and dispatched no rule for it: then no rule
    /// can match, and the full path has nothing to do.
    fn nothing_dispatched(&mut self) -> bool {
        let nothing = self.dispatched == Some(false);
        if nothing {
            self.dispatched = None;
        }
        nothing
    }

    /// Lists in `candidates` the rules that may match `ecs`, the document of an event the fast path
    /// declined: those it dispatched when it read the record, else those the document's own
    /// `event.action`, data stream, event category or OS lists ([`Pack::dispatched_document`]).
    fn mark_candidates(&mut self, ecs: &(impl Fields + ?Sized)) {
        if self.dispatched.take().is_none() {
            self.pack.dispatched_document(ecs, &mut self.candidates);
        }
    }

    /// [`RulePackDetector::process`] without the fast path or the dispatch: every rule evaluated on
    /// the parsed event, the reference they are tested against.
    pub fn process_exact(&mut self, text: &str) -> Result<Vec<String>, EventError> {
        self.stats.events += 1;
        let outcome = self.evaluate(text, false);
        self.count(&outcome);
        outcome
    }

    /// One record given as bytes, which need not be UTF-8.
    pub fn process_bytes(&mut self, bytes: &[u8]) -> Result<Vec<String>, LineError> {
        self.process_line(bytes, None)
    }

    /// [`RulePackDetector::process_bytes`]; `indexed`: the quote index holds `bytes`'s.
    fn process_line(
        &mut self,
        bytes: &[u8],
        indexed: Option<Indexed<'_>>,
    ) -> Result<Vec<String>, LineError> {
        // An ASCII record is UTF-8: the fast path (whose survey tells) needs no other check.
        if let Some(outcome) = self.decided_quietly(bytes, true, indexed) {
            self.stats.events += 1;
            self.fast_events += 1;
            return outcome.map_err(LineError::Event);
        }
        match crate::bytes::text(bytes) {
            Ok(text) => {
                self.stats.events += 1;
                // The fast path only read the index: it is still the text's.
                self.process_full(text, indexed).map_err(LineError::Event)
            }
            Err(offset) => Err(LineError::NotUtf8(offset)),
        }
    }

    /// Newline-delimited events, as [`crate::Detector::process_ndjson`] reads them.
    pub fn process_ndjson(&mut self, buffer: &[u8]) -> Vec<LineOutcome> {
        let mut out = Vec::new();
        self.each_line(buffer, |detector, line, text, indexed| {
            match detector.process_line(text, indexed) {
                Ok(alerts) if alerts.is_empty() => {}
                outcome => out.push(LineOutcome { line, outcome }),
            }
        });
        out
    }

    /// Each trimmed, non-blank line of an NDJSON buffer with its 0-based index, as the built-in
    /// rule reads them. A line that is a record as written (from `{` to `}`, no control byte)
    /// comes with its quotes indexed by the pass that found where it ends
    /// ([`fastpath::index_line`]): the quote index holds them when `each` is called.
    fn each_line<'b>(
        &mut self,
        buffer: &'b [u8],
        mut each: impl FnMut(&mut Self, u32, &'b [u8], Option<Indexed<'b>>),
    ) {
        let mut start = 0;
        let mut line = 0_u32;
        while let Some(rest) = buffer.get(start..) {
            let (end, indexed) = fastpath::index_line(rest, &mut self.quotes);
            let text = rest.get(..end).unwrap_or_default();
            let as_written = matches!((text.first(), text.last()), (Some(b'{'), Some(b'}')));
            let (text, indexed) = match indexed {
                Some(indexed) if as_written => (text, Some(indexed)),
                _ => (text.trim_ascii(), None),
            };
            if !text.is_empty() {
                each(self, line, text, indexed);
            }
            start += end + 1;
            line = line.saturating_add(1);
        }
    }

    /// The fast path for a plain raw CloudTrail record (see [`crate::fastpath`]): the rules'
    /// queries are evaluated on the fields the scan kept, mapped by the rows of
    /// [`crate::cloudtrail::MAPPING`], without a JSON tree or an ECS document. When it is certain
    /// that the full path ([`RulePackDetector::process_exact`]) would raise nothing and report no
    /// error, it applies the same effect on counters and histories and says so; anything else (an
    /// alert, whose document needs the ECS document; a value it cannot read; exceptions; a bad
    /// time the mapping rewrites) is left to the full path with nothing changed. The outcome, when
    /// decided, is no alert or the full path's refusal.
    /// With `ascii_only`, a record with a byte above 0x7f is declined (its UTF-8 is not checked).
    fn decided_quietly(
        &mut self,
        text: &[u8],
        ascii_only: bool,
        indexed: Option<Indexed<'_>>,
    ) -> Option<Result<Vec<String>, EventError>> {
        let outcome = match self.fast_terms(text, ascii_only, indexed) {
            FastFound::Undecided => None,
            FastFound::NoMatch => Some(Ok(Vec::new())),
            FastFound::Matched(time) => self.observe_if_known(time).then(|| Ok(Vec::new())),
            FastFound::Refused(error) => {
                self.stats.matched += 1;
                let outcome = Err(error);
                self.count(&outcome);
                Some(outcome)
            }
        };
        if outcome.is_some() {
            // Any event ends a snapshot being read in pieces, as in the full path.
            self.snapshot_pieces = None;
        }
        outcome
    }

    /// What the fast path finds in a record without consulting the histories: no rule matches, or
    /// some do and their terms are in `term_ends` and `term_bytes`, or only the full path can tell.
    /// Exactly what the full path's [`RulePackDetector::observed`] would find when it answers.
    /// `indexed`: the quote index holds `text`'s.
    fn fast_terms(
        &mut self,
        text: &[u8],
        ascii_only: bool,
        indexed: Option<Indexed<'_>>,
    ) -> FastFound {
        self.dispatched = None;
        if !cloudtrail::may_be_raw(text) {
            // What the scan would find: not raw, so not the fast path's.
            return FastFound::Undecided;
        }
        let fields = match indexed {
            Some(indexed) => fastpath::scan_indexed(text, &self.quotes, indexed, ascii_only),
            None => fastpath::scan_bytes(text, &mut self.quotes, ascii_only),
        };
        let Some(fields) = fields else {
            return FastFound::Undecided;
        };
        if !fields.raw {
            return FastFound::Undecided;
        }
        self.dispatched = self.pack.dispatched(&fields, &mut self.candidates);
        if self.dispatched.is_none() {
            return FastFound::Undecided;
        }
        let mut matching = std::mem::take(&mut self.matching);
        matching.clear();
        let found = if self.pack.matching_raw(
            &fields,
            &self.candidates,
            &mut matching,
            &mut self.eval_scratch,
        ) {
            self.fast_terms_of(&fields, &matching)
        } else {
            FastFound::Undecided
        };
        self.matching = matching;
        if !matches!(found, FastFound::Undecided) {
            // Decided here: no full path reads this record's dispatch.
            self.dispatched = None;
        }
        found
    }

    /// [`RulePackDetector::fast_terms`] for the rules `matching` of a scanned record.
    fn fast_terms_of(&mut self, fields: &fastpath::RawFields<'_>, matching: &[usize]) -> FastFound {
        if matching.is_empty() {
            return FastFound::NoMatch;
        }
        if !self.config.exceptions.is_empty() {
            return FastFound::Undecided;
        }
        let time = match raw_event_time(fields.event_time()) {
            Some(Ok(time)) => time,
            Some(Err(error)) => return FastFound::Refused(error),
            None => return FastFound::Undecided,
        };
        self.term_ends.clear();
        self.term_bytes.clear();
        'rules: for &index in matching {
            let mut values = [""; 3];
            let sources = self.pack.raw_terms(index);
            if sources.len() > values.len() {
                return FastFound::Undecided;
            }
            for (value, source) in values.iter_mut().zip(sources) {
                let Some(found) = source.value(fields) else {
                    return FastFound::Undecided;
                };
                match found {
                    Some(text) => *value = text,
                    // A document missing a term field has no term.
                    None => continue 'rules,
                }
            }
            // Straight into the buffer of the record's terms: a key of its own cost an allocation
            // and a copy per matching record.
            TermKey::append(
                &mut self.term_bytes,
                values[..sources.len()].iter().copied(),
            );
            self.term_ends.push((index, self.term_bytes.len()));
        }
        FastFound::Matched(time)
    }

    /// The histories' part of [`RulePackDetector::decided_quietly`] for the terms the fast path
    /// found: the full path's `raise` when no term is new (every term is checked before any is
    /// observed, so that nothing changes when one is new).
    fn observe_if_known(&mut self, time: time::EpochMillis) -> bool {
        self.known.clear();
        let mut start = 0;
        for &(index, end) in &self.term_ends {
            let (Some(rule), Some(tracked)) =
                (self.pack.rules().get(index), self.tracked.get(index))
            else {
                return false;
            };
            let term = self.term_bytes.get(start..end).unwrap_or_default();
            let window_ms = u64::try_from(rule.window_ms).unwrap_or(0);
            let known = tracked.history.find_known(term, time, window_ms);
            if known.is_none() && !self.config.learn {
                return false;
            }
            self.known.push(known);
            start = end;
        }
        let mut start = 0;
        for (&(index, end), &known) in self.term_ends.iter().zip(&self.known) {
            let (Some(rule), Some(tracked)) =
                (self.pack.rules().get(index), self.tracked.get_mut(index))
            else {
                continue;
            };
            match known {
                Some(known) => tracked.history.observe_found(known, time),
                None => {
                    let term = self.term_bytes.get(start..end).unwrap_or_default();
                    let window_ms = u64::try_from(rule.window_ms).unwrap_or(0);
                    tracked.history.observe(term, time, window_ms);
                }
            }
            start = end;
        }
        self.stats.matched += 1;
        true
    }

    fn count(&mut self, outcome: &Result<Vec<String>, EventError>) {
        match outcome {
            Ok(alerts) => self.stats.alerts += alerts.len() as u64,
            Err(_) => self.stats.errors += 1,
        }
    }

    fn evaluate(&mut self, text: &str, by_dispatch: bool) -> Result<Vec<String>, EventError> {
        self.snapshot_pieces = None;
        with_ecs(text, |ecs, raw| {
            self.with_matching(ecs, by_dispatch, |detector, matching| {
                detector.raise(text, raw, ecs, matching)
            })
        })?
    }

    /// `then` on the rules the ECS document `ecs` matches: among those its dispatch lists (see
    /// [`RulePackDetector::mark_candidates`]) when `by_dispatch`, else among all.
    fn with_matching<R>(
        &mut self,
        ecs: &Value,
        by_dispatch: bool,
        then: impl FnOnce(&mut Self, &[usize]) -> R,
    ) -> R {
        let mut matching = std::mem::take(&mut self.matching);
        matching.clear();
        if by_dispatch {
            self.mark_candidates(ecs);
        }
        let candidates = by_dispatch.then_some(&self.candidates);
        self.pack.matching_among(ecs, candidates, &mut matching);
        let outcome = then(self, &matching);
        self.matching = matching;
        outcome
    }

    fn raise(
        &mut self,
        text: &str,
        raw: bool,
        ecs: &Value,
        matching: &[usize],
    ) -> Result<Vec<String>, EventError> {
        let mut alerts = Vec::new();
        if matching.is_empty() {
            return Ok(alerts);
        }
        self.stats.matched += 1;
        let (time, terms) = match self.observed(ecs, matching)? {
            Observed::Terms(time, terms) => (time, terms),
            Observed::Excepted => {
                self.stats.excepted += 1;
                return Ok(alerts);
            }
        };
        let source = AlertSource {
            ecs,
            original: raw.then_some(text),
            text,
            time,
        };
        let mut key = TermKey::default();
        for (index, combinations) in terms {
            let (Some(rule), Some(tracked)) =
                (self.pack.rules().get(index), self.tracked.get_mut(index))
            else {
                continue;
            };
            let window_ms = u64::try_from(rule.window_ms).unwrap_or(0);
            for values in combinations {
                let values: Vec<&str> = values.iter().map(|value| value.as_ref()).collect();
                key.encode(values.iter().copied());
                let new = tracked.history.observe(key.as_bytes(), time, window_ms);
                if new && !self.config.learn {
                    alerts.push(rule_file_alert(rule, &source, &values, key.as_bytes()));
                }
            }
        }
        Ok(alerts)
    }

    /// What an event that the rules `matching` match observes before the histories: its time,
    /// then exceptions, then each rule's term combinations (rules missing a term field have none).
    /// The one reading of a matching event that processing and the stages share; an error changes
    /// no history, since it comes before any is consulted.
    fn observed<'a>(
        &self,
        ecs: &'a (impl Fields + ?Sized),
        matching: &[usize],
    ) -> Result<Observed<'a>, EventError> {
        let time = event_time(ecs)?;
        if self.is_excepted(ecs) {
            return Ok(Observed::Excepted);
        }
        let mut terms = Vec::with_capacity(matching.len());
        for &index in matching {
            let Some(rule) = self.pack.rules().get(index) else {
                continue;
            };
            if let Some(combinations) = combinations_of_fields(&rule.new_terms_fields, ecs)? {
                terms.push((index, combinations));
            }
        }
        Ok(Observed::Terms(time, terms))
    }

    fn is_excepted(&self, ecs: &(impl Fields + ?Sized)) -> bool {
        config::excepted(&self.config.exceptions, ecs)
    }

    /// The state of the pack: `NTRMPACK`, then per rule its snapshot's length (u64, little-endian)
    /// and the snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = PACK_MAGIC.to_vec();
        for (rule, tracked) in self.pack.rules().iter().zip(&self.tracked) {
            let bytes = snapshot::encode(
                &Identity {
                    rule_id: &tracked.state_id,
                    term_signature: &tracked.signature,
                    term_arity: rule.new_terms_fields.len(),
                },
                tracked.history.evictions(),
                tracked.history.len(),
                tracked.history.oldest_first(),
            );
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Memory the histories hold.
    pub fn footprint(&self) -> Footprint {
        #[cfg(target_arch = "wasm32")]
        let linear_memory_bytes = core::arch::wasm32::memory_size(0) as u64 * 65_536;
        #[cfg(not(target_arch = "wasm32"))]
        let linear_memory_bytes = 0;
        let histories = self.tracked.iter().map(|tracked| &tracked.history);
        Footprint {
            linear_memory_bytes,
            history_bytes: histories.clone().map(|h| h.heap_bytes() as u64).sum(),
            term_bytes: histories.clone().map(|h| h.term_bytes() as u64).sum(),
            terms: histories.map(|h| h.len() as u64).sum(),
        }
    }

    /// Starts a snapshot to be read in pieces with [`RulePackDetector::snapshot_read`]; returns
    /// its length. Processing an event before the last piece ends it.
    pub fn snapshot_begin(&mut self) -> u64 {
        let bytes = self.snapshot();
        let length = bytes.len() as u64;
        self.snapshot_pieces = Some((bytes, 0));
        length
    }

    /// The next at most `max_bytes` (at least 1) bytes of the snapshot begun; empty at its end or
    /// when none is being read.
    pub fn snapshot_read(&mut self, max_bytes: usize) -> Vec<u8> {
        let Some((bytes, read)) = self.snapshot_pieces.as_mut() else {
            return Vec::new();
        };
        let end = bytes.len().min(read.saturating_add(max_bytes.max(1)));
        let piece = bytes.get(*read..end).unwrap_or_default().to_vec();
        *read = end;
        if piece.is_empty() {
            self.snapshot_pieces = None;
        }
        piece
    }

    /// Starts a restore of `length` bytes given in pieces.
    pub fn restore_begin(&mut self, length: u64) {
        self.restore_pieces = Some((length, Vec::new()));
    }

    /// The next piece of the restore begun.
    pub fn restore_write(&mut self, piece: &[u8]) -> Result<(), RestoreError> {
        let Some((length, bytes)) = self.restore_pieces.as_mut() else {
            return Err(RestoreError::Corrupt(snapshot::Corruption::NotBegun));
        };
        if bytes.len() as u64 + piece.len() as u64 > *length {
            self.restore_pieces = None;
            return Err(RestoreError::Truncated);
        }
        bytes.extend_from_slice(piece);
        Ok(())
    }

    /// Ends the restore begun: as [`RulePackDetector::restore`] of its bytes.
    pub fn restore_end(&mut self) -> Result<(), RestoreError> {
        let Some((length, bytes)) = self.restore_pieces.take() else {
            return Err(RestoreError::Corrupt(snapshot::Corruption::NotBegun));
        };
        if (bytes.len() as u64) < length {
            return Err(RestoreError::Truncated);
        }
        self.restore(&bytes).map(|_| ())
    }

    /// What the last restore did not keep, in the order found.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// Restores a pack's state: every rule in both keeps its history; a rule whose signature
    /// changed, or that is no longer in the pack, is reported. Nothing changes on error.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<Vec<Notice>, RestoreError> {
        let mut rest = bytes
            .strip_prefix(PACK_MAGIC.as_slice())
            .ok_or(RestoreError::BadMagic)?;
        let mut restored: Vec<Option<History>> = self.tracked.iter().map(|_| None).collect();
        let mut notices = Vec::new();
        while !rest.is_empty() {
            let (length, after) = rest.split_at_checked(8).ok_or(RestoreError::Truncated)?;
            let length =
                u64::from_le_bytes(length.try_into().map_err(|_| RestoreError::Truncated)?);
            let length = usize::try_from(length).map_err(|_| RestoreError::Truncated)?;
            let (piece, after) = after
                .split_at_checked(length)
                .ok_or(RestoreError::Truncated)?;
            rest = after;
            let parsed = snapshot::parse(piece)?;
            let rule_id = parsed
                .rule_id
                .split_once('#')
                .map_or(parsed.rule_id.as_str(), |(id, _)| id)
                .to_owned();
            let Some(index) = self
                .pack
                .rules()
                .iter()
                .position(|rule| rule.rule_id == rule_id)
            else {
                notices.push(Notice::Removed(rule_id));
                continue;
            };
            let (Some(rule), Some(tracked)) =
                (self.pack.rules().get(index), self.tracked.get(index))
            else {
                continue;
            };
            let identity = Identity {
                rule_id: &tracked.state_id,
                term_signature: &tracked.signature,
                term_arity: rule.new_terms_fields.len(),
            };
            match snapshot::decode(piece, &identity) {
                Ok(contents) => {
                    let mut history = History::new(self.capacity, self.config.hash_key);
                    history.reserve(
                        contents.entries.len(),
                        contents.entries.iter().map(|(term, _)| term.len()).sum(),
                    );
                    for (term, last_seen) in &contents.entries {
                        history.insert(term, *last_seen);
                    }
                    history.add_evictions(contents.evictions);
                    if let Some(slot) = restored.get_mut(index) {
                        *slot = Some(history);
                    }
                }
                Err(RestoreError::Incompatible(_)) => notices.push(Notice::Changed(rule_id)),
                Err(error) => return Err(error),
            }
        }
        for (tracked, history) in self.tracked.iter_mut().zip(restored) {
            tracked.history =
                history.unwrap_or_else(|| History::new(self.capacity, self.config.hash_key));
        }
        self.snapshot_pieces = None;
        self.notices.clone_from(&notices);
        Ok(notices)
    }
}

/// The rule id and a digest of what decides its terms (version, query as written, filters, term
/// fields), so that a changed rule does not inherit history it would not have made.
fn identity_of(rule: &Rule) -> String {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part(
        rule.version
            .map_or_else(String::new, |version| version.to_string())
            .as_bytes(),
    );
    part(rule.query_text.as_bytes());
    part(format!("{:?}", rule.filters).as_bytes());
    part(term_signature(rule).as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{}#{hex}", rule.rule_id)
}

/// The term fields as the history format spells them (`name<-source;...`).
fn term_signature(rule: &Rule) -> String {
    rule.new_terms_fields
        .iter()
        .map(|field| format!("{field}<-{field}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// A rule file as the host hands it over: the name it is known by (its path) and its text; and how
/// a face that reads files finds them.
pub use newterms_contract::rule_files::{RuleFile, read as read_rule_files};

/// Fields filled by enrichment newterms does not do (autonomous systems, geolocation), and by the
/// per-action entity tables of Elastic's CloudTrail pipeline (`related.entity`, `entity.target.id`,
/// ...), which the raw mapping does not reproduce: a rule reading them matches only documents that
/// already carry them.
const ENRICHED: [&str; 9] = [
    "source.as.",
    "destination.as.",
    "source.geo.",
    "destination.geo.",
    "related.entity",
    "entity.",
    "actor.entity.",
    "target.entity.",
    "user.entity.",
];

/// Whether only enriched ECS documents carry `field` (see [`ENRICHED`]).
pub fn is_enriched(field: &str) -> bool {
    ENRICHED.iter().any(|prefix| field.starts_with(prefix))
}

/// The fields of `rule` (its query's, then its term fields) that only enriched ECS documents carry.
pub fn enrichment_fields(rule: &Rule) -> Vec<String> {
    let mut fields: Vec<String> = rule
        .compiled()
        .fields()
        .into_iter()
        .chain(rule.new_terms_fields.iter().cloned())
        .filter(|field| is_enriched(field))
        .collect();
    fields.dedup();
    fields
}

#[cfg(feature = "rule-toml")]
/// Each file loaded as a rule, or why it is refused (the message names the file).
pub fn load_rule_files(files: &[RuleFile]) -> Vec<Result<Rule, String>> {
    let mut seen: Vec<(String, String)> = Vec::new();
    files
        .iter()
        .map(|file| {
            let rule = crate::kql::load_rule(&file.text)
                .map_err(|error| format!("{}: {error}", file.name))?;
            if let Some((_, first)) = seen.iter().find(|(id, _)| *id == rule.rule_id) {
                return Err(format!(
                    "{}: rule_id {} is also the rule_id of {first}",
                    file.name, rule.rule_id
                ));
            }
            seen.push((rule.rule_id.clone(), file.name.clone()));
            Ok(rule)
        })
        .collect()
}

#[cfg(feature = "rule-toml")]
impl RulePackDetector {
    /// A detector for the rules of `files` under `config`; the first refusal is the error.
    pub fn from_files(files: &[RuleFile], config: Config) -> Result<Self, String> {
        if files.is_empty() {
            return Err("no rule files".to_owned());
        }
        let rules = load_rule_files(files)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let pack = Pack::new(rules).map_err(|error| error.to_string())?;
        Self::new(pack, config).map_err(|error| error.to_string())
    }
}
