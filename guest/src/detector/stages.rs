//! Processing in two stages, so that a host can run the expensive, stateless one on several
//! instances at once: `extract_ndjson` (prefilter, parse, query, exceptions, time, term combinations:
//! everything before the history), then `decide` on one instance, in order (the first-seen decision),
//! then `alerts_for` for the rare line with a new term. Together they do exactly what
//! [`Detector::process_ndjson`] does, through the same code.

use super::fast::FastFound;
use super::full::{Observed, TIME_RANGE};
use super::{
    Detector, EventError, ExtractedLine, Extraction, FreshTerms, LineError, Observation, Stats,
    prefilter,
};
use crate::history::TermKey;
use crate::time::EpochMillis;

impl Detector {
    /// The stateless half of [`Detector::process_ndjson`] over `buffer`: per line that observes terms
    /// or is refused, its time and encoded terms (only this instance's, when partitioned) or why;
    /// and the counters processing would add. The history is not consulted.
    pub fn extract_ndjson(&mut self, buffer: &[u8]) -> Extraction {
        let mut extraction = Extraction::default();
        let mut start = 0;
        let mut line: u32 = 0;
        while let Some(rest) = buffer.get(start..).filter(|rest| !rest.is_empty()) {
            let (length, survey) = prefilter::survey_line(rest);
            let text = rest.get(..length).unwrap_or_default().trim_ascii();
            if !text.is_empty() {
                let outcome = self.extract_line(text, &survey, &mut extraction);
                if let Some(outcome) = outcome {
                    extraction.lines.push(ExtractedLine { line, outcome });
                }
            }
            start += length + 1;
            line = line.wrapping_add(1);
        }
        extraction
    }

    /// One trimmed, non-blank line: what it observes, if anything, or why it is refused.
    fn extract_line(
        &mut self,
        text: &[u8],
        survey: &prefilter::Survey,
        extraction: &mut Extraction,
    ) -> Option<Result<Observation, LineError>> {
        if survey.non_ascii
            && let Err(offset) = crate::bytes::text(text)
        {
            return Some(Err(LineError::NotUtf8(offset)));
        }
        extraction.events += 1;
        if self.needle.skips_surveyed(text, survey) {
            return None;
        }
        if !survey.special {
            match self.fast_terms(text) {
                FastFound::Undecided => {}
                FastFound::NoMatch => return None,
                FastFound::MatchedWithoutTerm => {
                    extraction.matched += 1;
                    return None;
                }
                FastFound::Term(time) => {
                    extraction.matched += 1;
                    extraction.terms.push(self.scratch_key.as_bytes());
                    return Some(Ok(Observation { time, terms: 1 }));
                }
            }
        }
        // Plain ASCII, or checked above: this cannot fail.
        let text = String::from_utf8_lossy(text);
        let observed = Self::when_matching(self.rule.query, &text, |ecs, _| {
            extraction.matched += 1;
            match self.observed(ecs)? {
                Observed::Excepted => {
                    extraction.excepted += 1;
                    Ok(None)
                }
                Observed::NoTerm => Ok(None),
                Observed::Terms(time, combinations) => {
                    let mut key = TermKey::default();
                    let mut terms = 0;
                    for values in combinations {
                        key.encode(values.iter().map(|value| value.as_ref()));
                        if self.owns(key.as_bytes()) {
                            extraction.terms.push(key.as_bytes());
                            terms += 1;
                        }
                    }
                    Ok((terms > 0).then_some(Observation { time, terms }))
                }
            }
        });
        match observed.and_then(|matched| matched.unwrap_or(Ok(None))) {
            Ok(observation) => observation.map(Ok),
            Err(error) => Some(Err(LineError::Event(error))),
        }
    }

    /// The stateful half: applies an extraction to the history in order, as processing its buffer
    /// would, adds its counters, and returns the lines whose terms were new (none in learn mode).
    /// An observation whose time no event can have (outside years 1 to 9999) is ignored.
    pub fn decide(&mut self, extraction: &Extraction) -> Vec<FreshTerms> {
        let (history, window_ms) = (&mut self.history, self.window_ms);
        decide_lines(
            extraction,
            &mut self.stats,
            self.config.learn,
            |key, time| Some(history.observe(key, time, window_ms)),
        )
    }

    /// The alerts of `text` for its terms whose encodings are among `keys` (those [`Detector::decide`]
    /// found new), in the order processing raises them. Stateless.
    pub fn alerts_for(&self, text: &str, keys: &[Vec<u8>]) -> Result<Vec<String>, EventError> {
        let alerts = Self::when_matching(self.rule.query, text, |ecs, raw| {
            let Observed::Terms(time, combinations) = self.observed(ecs)? else {
                return Ok(Vec::new());
            };
            let mut key = TermKey::default();
            let mut alerts = Vec::new();
            for values in combinations {
                let values: Vec<&str> = values.iter().map(|value| value.as_ref()).collect();
                key.encode(values.iter().copied());
                if keys.iter().any(|fresh| fresh.as_slice() == key.as_bytes()) {
                    alerts.push(self.alert(text, ecs, raw, time, &values, key.as_bytes()));
                }
            }
            Ok(alerts)
        })?;
        alerts.unwrap_or(Ok(Vec::new()))
    }
}

/// How an extraction is applied, for the built-in rule and a pack alike: its counters added to
/// `stats`, then each line's terms observed in order through `observe` (whether the term is new;
/// `None` for a term it cannot place, which is skipped), refused lines counted as errors and times
/// no event can have ignored, as processing does; the lines with new terms (none when `learn`).
pub(crate) fn decide_lines(
    extraction: &Extraction,
    stats: &mut Stats,
    learn: bool,
    mut observe: impl FnMut(&[u8], EpochMillis) -> Option<bool>,
) -> Vec<FreshTerms> {
    stats.events += extraction.events;
    stats.matched += extraction.matched;
    stats.excepted += extraction.excepted;
    let mut fresh = Vec::new();
    for (line, terms) in extraction.lines_with_terms() {
        let observation = match &line.outcome {
            Ok(observation) if TIME_RANGE.contains(&observation.time) => observation,
            Ok(_) | Err(LineError::NotUtf8(_)) => continue,
            Err(LineError::Event(_)) => {
                stats.errors += 1;
                continue;
            }
        };
        let mut new_terms = Vec::new();
        for (index, key) in (0_u32..).zip(terms.iter()) {
            let new = observe(key, observation.time).unwrap_or(false);
            if new && !learn {
                new_terms.push(index);
            }
        }
        if !new_terms.is_empty() {
            stats.alerts += new_terms.len() as u64;
            fresh.push(FreshTerms {
                line: line.line,
                terms: new_terms,
            });
        }
    }
    fresh
}
