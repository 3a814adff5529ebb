//! The fast path: settles plain raw CloudTrail records that raise nothing without a JSON tree.

use super::Detector;
use super::full::raw_event_time;
use crate::cloudtrail::{self, Mapping};
use crate::definition::{ProfileDefinition, RuleDefinition};
use crate::fastpath::{self, Found, Slot};
use crate::time::EpochMillis;

/// The rows of the mapping that the query's fields and the terms' sources read, looked up once
/// rather than per record (`None` for a field the mapping does not fill).
pub(super) struct FastPlan {
    query: Box<[Option<&'static Mapping>]>,
    terms: Box<[Box<[Option<&'static Mapping>]>]>,
}

impl FastPlan {
    pub(super) fn new(rule: &RuleDefinition, profile: &ProfileDefinition) -> Self {
        Self {
            query: rule
                .query
                .iter()
                .map(|clause| cloudtrail::mapping(clause.field()))
                .collect(),
            terms: profile
                .terms
                .iter()
                .map(|term| {
                    term.sources
                        .iter()
                        .map(|source| cloudtrail::mapping(source))
                        .collect()
                })
                .collect(),
        }
    }
}

/// What the fast path settled about a record.
pub(super) enum FastFound {
    /// Not settled: the full path decides.
    Undecided,
    /// The record does not match the query: nothing to do.
    NoMatch,
    /// The record matches but observes no term of this instance (a term field has no value, or
    /// the term is another partition's).
    MatchedWithoutTerm,
    /// The record matches and observes one term at this time; its encoding is in the detector's
    /// `scratch_key`.
    Term(EpochMillis),
}

impl Detector {
    /// The fast path for records the prefilter lets through: reads a plain raw CloudTrail record
    /// without building a JSON tree (see [`crate::fastpath`]) and, when it is certain what full
    /// evaluation would find before the history, says so. Anything else (ECS documents, escapes,
    /// unusual types, exceptions, a bad time) is [`FastFound::Undecided`], with nothing changed.
    pub(super) fn fast_terms(&mut self, text: &[u8]) -> FastFound {
        let Some(fields) = fastpath::scan_plain(text, &mut self.quotes) else {
            return FastFound::Undecided;
        };
        if !fields.raw {
            return FastFound::Undecided;
        }
        // The query, clause by clause as `definition::query_holds` reads it, each clause on the
        // one field it reads.
        for (clause, row) in self.rule.query.iter().zip(&self.fast_plan.query) {
            let found = Found(row.and_then(|row| fields.derive(row)));
            match clause.holds(&found) {
                None => return FastFound::Undecided,
                Some(false) => return FastFound::NoMatch,
                Some(true) => {}
            }
        }
        // The event matches: the full path would read its time, then exceptions, then terms.
        if !self.config.exceptions.is_empty() {
            return FastFound::Undecided;
        }
        // A time the full path refuses is left to it: its error says so.
        let Some(Ok(time)) = raw_event_time(fields.event_time()) else {
            return FastFound::Undecided;
        };
        let mut values = [""; 8];
        if self.profile.terms.len() > values.len() {
            return FastFound::Undecided;
        }
        for (value, sources) in values.iter_mut().zip(&self.fast_plan.terms) {
            let mut found = None;
            for row in sources {
                match row.and_then(|row| fields.derive(row)) {
                    None => return FastFound::Undecided,
                    Some(Slot::Text(text)) => {
                        found = Some(text);
                        break;
                    }
                    Some(_) => {}
                }
            }
            match found {
                Some(text) => *value = text,
                // A matching event without a term.
                None => return FastFound::MatchedWithoutTerm,
            }
        }
        self.scratch_key
            .encode(values[..self.profile.terms.len()].iter().copied());
        if !self.owns(self.scratch_key.as_bytes()) {
            return FastFound::MatchedWithoutTerm;
        }
        FastFound::Term(time)
    }

    /// The fast path when processing: applies what [`Detector::fast_terms`] settled to counters and
    /// history and says so, unless the term is new (its alert document needs the full path), which
    /// is left to [`Detector::process_exact`] with nothing changed.
    pub(super) fn decided_quietly(&mut self, text: &[u8]) -> bool {
        let time = match self.fast_terms(text) {
            FastFound::Undecided => return false,
            FastFound::NoMatch => return true,
            FastFound::MatchedWithoutTerm => {
                self.stats.matched += 1;
                return true;
            }
            FastFound::Term(time) => time,
        };
        let key = self.scratch_key.as_bytes();
        if self.config.learn {
            self.history.observe(key, time, self.window_ms);
        } else if !self.history.observe_known(key, time, self.window_ms) {
            return false;
        }
        self.stats.matched += 1;
        true
    }
}
