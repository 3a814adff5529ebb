//! The fast path: settles plain raw CloudTrail records that raise nothing without a JSON tree.

use super::full::TIME_RANGE;
use super::{Detector, terms};
use crate::cloudtrail::{self, Mapping};
use crate::definition::{ProfileDefinition, RuleDefinition};
use crate::fastpath::{self, Found, Slot};
use crate::time;

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

impl Detector {
    /// The fast path for records the prefilter lets through: reads a plain raw CloudTrail record
    /// without building a JSON tree (see [`crate::fastpath`]) and, when it is certain that full
    /// evaluation would raise nothing and report no error, applies its effect on counters and
    /// history and says so. Anything else (ECS documents, escapes, unusual types, exceptions, a bad
    /// time, and any event that raises an alert, whose document only the full path builds) is left
    /// to [`Detector::process_exact`], with nothing changed.
    pub(super) fn decided_quietly(&mut self, text: &[u8]) -> bool {
        let Some(fields) = fastpath::scan_plain(text, &mut self.quotes) else {
            return false;
        };
        if !fields.raw {
            return false;
        }
        // The query, clause by clause as `definition::query_holds` reads it, each clause on the
        // one field it reads.
        for (clause, row) in self.rule.query.iter().zip(&self.fast_plan.query) {
            let found = Found(row.and_then(|row| fields.derive(row)));
            match clause.holds(&found) {
                None => return false,
                Some(false) => return true,
                Some(true) => {}
            }
        }
        // The event matches: the full path would read its time, then exceptions, then terms.
        if !self.config.exceptions.is_empty() {
            return false;
        }
        let Some(time) = fields
            .event_time()
            .and_then(time::parse_iso8601)
            .filter(|millis| TIME_RANGE.contains(millis))
        else {
            return false;
        };
        let mut values = [""; 8];
        if self.profile.terms.len() > values.len() {
            return false;
        }
        for (value, sources) in values.iter_mut().zip(&self.fast_plan.terms) {
            let mut found = None;
            for row in sources {
                match row.and_then(|row| fields.derive(row)) {
                    None => return false,
                    Some(Slot::Text(text)) => {
                        found = Some(text);
                        break;
                    }
                    Some(_) => {}
                }
            }
            match found {
                Some(text) => *value = text,
                None => {
                    // A matching event without a term: counted, nothing else.
                    self.stats.matched += 1;
                    return true;
                }
            }
        }
        self.scratch_key
            .encode(values[..self.profile.terms.len()].iter().copied());
        let key = self.scratch_key.as_bytes();
        if let Some(partition) = self.config.partition
            && terms::bucket_of(key, partition.count) != partition.index
        {
            // Another instance's term: counted, nothing else, as the full path does.
            self.stats.matched += 1;
            return true;
        }
        if self.config.learn {
            self.history.observe(key, time, self.window_ms);
        } else if !self.history.observe_known(key, time, self.window_ms) {
            return false;
        }
        self.stats.matched += 1;
        true
    }
}
