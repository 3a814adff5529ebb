//! A pack processed in two stages, as the built-in rule is (`crate::detector` `stages`), so that a
//! host runs the expensive, stateless one on several instances at once: `extract_ndjson` (fast path
//! or parse, every rule's query and filters, exceptions, time, each matching rule's terms), then
//! `decide` on one instance in order (each rule's first-seen decision), then `alerts_for` for the
//! rare line with a new term. Together they do exactly what [`RulePackDetector::process_ndjson`]
//! does, through the same readings of an event (`fast_terms`, `observed`).
//!
//! A pack's term travels between the stages as the rule's place in the pack (4 bytes,
//! little-endian) followed by the term's key in that rule's history.

use super::{FastFound, Observed, RulePackDetector};
use crate::alert::{AlertSource, rule_file_alert};
use crate::detector::full::with_ecs;
use crate::detector::stages::decide_lines;
use crate::detector::{
    EventError, ExtractedLine, Extraction, FreshTerms, LineError, Observation, Terms,
};
use crate::fastpath::Indexed;
use crate::fields::Fields;
use crate::history::TermKey;

/// What comes before rule `index`'s term key in its encoding between the stages.
fn stage_prefix(index: usize) -> [u8; 4] {
    u32::try_from(index).unwrap_or(u32::MAX).to_le_bytes()
}

/// The encoding of rule `index`'s term `key` between the stages.
fn staged(index: usize, key: &[u8]) -> Vec<u8> {
    [&stage_prefix(index)[..], key].concat()
}

/// Adds rule `index`'s term `key` to `terms`, encoded as [`staged`] encodes it.
fn stage(terms: &mut Terms, index: usize, key: &[u8]) {
    terms.push_joined(&[&stage_prefix(index), key]);
}

/// The rule's place and the history's key of a staged term; `None` for bytes no extraction makes.
fn unstaged(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (index, key) = bytes.split_first_chunk::<4>()?;
    Some((usize::try_from(u32::from_le_bytes(*index)).ok()?, key))
}

impl RulePackDetector {
    /// The stateless half of [`RulePackDetector::process_ndjson`] over `buffer`: per line that
    /// observes terms or is refused, its time and staged terms or why; and the counters processing
    /// would add. No history is consulted.
    pub fn extract_ndjson(&mut self, buffer: &[u8]) -> Extraction {
        let mut extraction = Extraction::default();
        self.each_line(buffer, |detector, line, text, indexed| {
            if let Some(outcome) = detector.extract_line(text, indexed, &mut extraction) {
                extraction.lines.push(ExtractedLine { line, outcome });
            }
        });
        extraction
    }

    /// One trimmed, non-blank line: what it observes, if anything, or why it is refused.
    /// `indexed`: the quote index holds `bytes`'s.
    fn extract_line(
        &mut self,
        bytes: &[u8],
        indexed: Option<Indexed<'_>>,
        extraction: &mut Extraction,
    ) -> Option<Result<Observation, LineError>> {
        match self.fast_terms(bytes, true, indexed) {
            FastFound::Undecided => {}
            FastFound::NoMatch => {
                extraction.events += 1;
                return None;
            }
            FastFound::Matched(time) => {
                extraction.events += 1;
                extraction.matched += 1;
                let mut start = 0;
                for &(index, end) in &self.term_ends {
                    let key = self.term_bytes.get(start..end).unwrap_or_default();
                    start = end;
                    stage(&mut extraction.terms, index, key);
                }
                let terms = u32::try_from(self.term_ends.len()).unwrap_or(u32::MAX);
                return (terms > 0).then_some(Ok(Observation { time, terms }));
            }
            FastFound::Refused(error) => {
                extraction.events += 1;
                extraction.matched += 1;
                return Some(Err(LineError::Event(error)));
            }
        }
        let text = match crate::bytes::text(bytes) {
            Ok(text) => text,
            Err(offset) => return Some(Err(LineError::NotUtf8(offset))),
        };
        extraction.events += 1;
        if self.nothing_dispatched() {
            return None;
        }
        let sparse = self.with_sparse(text, indexed, |detector, fields, matching| {
            Some(detector.extract_document(fields, matching, extraction))
        });
        let observed = match sparse {
            Some(observed) => observed,
            None => with_ecs(text, |ecs, _| {
                self.with_matching(ecs, true, |detector, matching| {
                    detector.extract_document(ecs, matching, extraction)
                })
            })
            .and_then(|observed| observed),
        };
        match observed {
            Ok(observation) => observation.map(Ok),
            Err(error) => Some(Err(LineError::Event(error))),
        }
    }

    /// What the ECS document `ecs` of a line observes, the rules `matching` matching it: its time
    /// and staged terms, if any.
    fn extract_document(
        &self,
        ecs: &(impl Fields + ?Sized),
        matching: &[usize],
        extraction: &mut Extraction,
    ) -> Result<Option<Observation>, EventError> {
        if matching.is_empty() {
            return Ok(None);
        }
        extraction.matched += 1;
        self.observed(ecs, matching).map(|observed| match observed {
            Observed::Excepted => {
                extraction.excepted += 1;
                None
            }
            Observed::Terms(time, combinations) => {
                let mut key = TermKey::default();
                let mut terms = 0;
                for (index, combinations) in &combinations {
                    for values in combinations {
                        key.encode(values.iter().map(|value| value.as_ref()));
                        stage(&mut extraction.terms, *index, key.as_bytes());
                        terms += 1;
                    }
                }
                (terms > 0).then_some(Observation { time, terms })
            }
        })
    }

    /// The stateful half: applies an extraction to the rules' histories in order, as processing
    /// its buffer would, adds its counters, and returns the lines whose terms were new (none in
    /// learn mode). An observation whose time no event can have, or a term naming no rule of the
    /// pack, is ignored.
    pub fn decide(&mut self, extraction: &Extraction) -> Vec<FreshTerms> {
        let (rules, tracked) = (self.pack.rules(), &mut self.tracked);
        decide_lines(
            extraction,
            &mut self.stats,
            self.config.learn,
            |staged, time| {
                let (index, key) = unstaged(staged)?;
                let window_ms = u64::try_from(rules.get(index)?.window_ms).unwrap_or(0);
                Some(
                    tracked
                        .get_mut(index)?
                        .history
                        .observe(key, time, window_ms),
                )
            },
        )
    }

    /// The alerts of `text` for its staged terms among `staged_terms` (those
    /// [`RulePackDetector::decide`] found new), in the order processing raises them. Stateless.
    pub fn alerts_for(
        &self,
        text: &str,
        staged_terms: &[Vec<u8>],
    ) -> Result<Vec<String>, EventError> {
        with_ecs(text, |ecs, raw| {
            let mut matching = Vec::new();
            self.pack.matching(ecs, &mut matching);
            if matching.is_empty() {
                return Ok(Vec::new());
            }
            let Observed::Terms(time, terms) = self.observed(ecs, &matching)? else {
                return Ok(Vec::new());
            };
            let source = AlertSource {
                ecs,
                original: raw.then_some(text),
                text,
                time,
            };
            let mut key = TermKey::default();
            let mut alerts = Vec::new();
            for (index, combinations) in terms {
                let Some(rule) = self.pack.rules().get(index) else {
                    continue;
                };
                for values in combinations {
                    let values: Vec<&str> = values.iter().map(|value| value.as_ref()).collect();
                    key.encode(values.iter().copied());
                    let wanted = staged(index, key.as_bytes());
                    if staged_terms.contains(&wanted) {
                        alerts.push(rule_file_alert(rule, &source, &values, key.as_bytes()));
                    }
                }
            }
            Ok(alerts)
        })?
    }
}
