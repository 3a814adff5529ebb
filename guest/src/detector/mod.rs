//! The streaming new-terms engine: query, exceptions, terms, first-seen history, alerts.
//!
//! One job a module: [`config`] (what a detector runs under), `fast` (the fast path), `full` (the
//! full path), `terms` (term combinations), `snapshots` (snapshots and restores, whole or in
//! pieces), [`outcome`] (what processing reports). This module holds the detector and the entry
//! points that choose a path.

use std::num::NonZeroUsize;

use crate::definition::{LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL, ProfileDefinition, RuleDefinition};
use crate::fastpath::QuoteIndex;
use crate::history::{Cursor, History, TermKey};
use crate::prefilter::{self, Needle, Survey};
use crate::snapshot::{Decoder, Identity, Writer};
use fast::FastFound;

pub mod config;
mod fast;
pub(crate) mod full;
pub mod outcome;
mod snapshots;
pub(crate) mod stages;
pub(crate) mod terms;

pub use config::{Config, ConfigError, DEFAULT_CAPACITY, Exception, Partition};
pub use outcome::{
    EventError, ExtractedLine, Extraction, Footprint, FreshTerms, LineError, LineOutcome,
    LineTerms, Observation, Route, Stats, Terms,
};
pub use terms::{MAX_TERMS_PER_EVENT, bucket_of};

/// One configured rule and its history.
pub struct Detector {
    rule: &'static RuleDefinition,
    profile: &'static ProfileDefinition,
    config: Config,
    window_ms: u64,
    history: History,
    stats: Stats,
    term_signature: String,
    needle: Needle,
    scratch_key: TermKey,
    quotes: QuoteIndex,
    fast_plan: fast::FastPlan,
    /// A snapshot being read in pieces, and the history's generation when it began: it walks the
    /// history, so any change to the history (a new generation) ends it.
    snapshot_writer: Option<(Writer<Cursor>, u64)>,
    /// A restore being written in pieces, and the history it fills (swapped in at its end).
    restoring: Option<(Decoder, History)>,
}

impl Default for Detector {
    fn default() -> Self {
        Self::build(
            Config::default(),
            NonZeroUsize::MIN.saturating_add(DEFAULT_CAPACITY as usize - 1),
        )
    }
}

impl Detector {
    /// A detector for the Lambda rule under `config`, with empty history.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let capacity = config.validate()?;
        Ok(Self::build(config, capacity))
    }

    fn build(config: Config, capacity: NonZeroUsize) -> Self {
        let rule = &LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL;
        let profile = rule.profile(config.profile);
        let term_signature = profile
            .terms
            .iter()
            .map(|term| format!("{}<-{}", term.name, term.sources.join("|")))
            .collect::<Vec<_>>()
            .join(";");
        Self {
            rule,
            profile,
            window_ms: config.window_ms.unwrap_or(profile.window_ms),
            history: History::new(capacity, config.hash_key),
            stats: Stats::default(),
            term_signature,
            needle: Needle::for_rule(),
            scratch_key: TermKey::default(),
            quotes: QuoteIndex::default(),
            fast_plan: fast::FastPlan::new(rule, profile),
            snapshot_writer: None,
            restoring: None,
            config,
        }
    }

    /// The rule this detector runs.
    pub fn rule(&self) -> &'static RuleDefinition {
        self.rule
    }

    /// The profile in force.
    pub fn profile(&self) -> &'static ProfileDefinition {
        self.profile
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The window in force, in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The history capacity in force.
    pub fn capacity(&self) -> u32 {
        self.config.capacity()
    }

    /// Which terms this detector keeps: the term fields and their sources. Snapshots carry it, so that
    /// history of one profile is not read as another's.
    pub fn term_signature(&self) -> &str {
        &self.term_signature
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            terms: self.history.len() as u64,
            evictions: self.history.evictions(),
            ..self.stats
        }
    }

    /// Processes one event (JSON text) and returns the alerts it raises (JSON text).
    ///
    /// Records that cannot match the query are skipped without a parse (see [`crate::prefilter`]
    /// for why that is sound, and for the one documented trade-off on malformed input).
    pub fn process(&mut self, text: &str) -> Result<Vec<String>, EventError> {
        let survey = prefilter::survey(text.as_bytes());
        if self.quiet(text.as_bytes(), &survey) {
            self.stats.events += 1;
            return Ok(Vec::new());
        }
        self.process_exact(text)
    }

    /// [`Detector::process`] of a record given as bytes, which need not be UTF-8: a record that is
    /// not is reported as [`LineError::NotUtf8`] and is not an event. Plain ASCII, which the survey
    /// tells, is not checked again: hosts that hand bytes over (Fluent Bit) save a pass.
    pub fn process_bytes(&mut self, bytes: &[u8]) -> Result<Vec<String>, LineError> {
        let survey = prefilter::survey(bytes);
        self.process_surveyed(bytes, &survey)
    }

    /// One record and its survey: as [`Detector::process_bytes`].
    fn process_surveyed(&mut self, text: &[u8], survey: &Survey) -> Result<Vec<String>, LineError> {
        if survey.non_ascii
            && let Err(offset) = crate::bytes::text(text)
        {
            return Err(LineError::NotUtf8(offset));
        }
        if self.quiet(text, survey) {
            self.stats.events += 1;
            return Ok(Vec::new());
        }
        // Plain ASCII, or checked above: this cannot fail.
        let text = String::from_utf8_lossy(text);
        self.process_exact(&text).map_err(LineError::Event)
    }

    /// Whether the prefilter or the fast path settles the record (UTF-8 text) with nothing to
    /// report; when it does, its effect on the history is applied, but not the event count.
    fn quiet(&mut self, text: &[u8], survey: &Survey) -> bool {
        self.needle.skips_surveyed(text, survey) || (!survey.special && self.decided_quietly(text))
    }

    /// Where an engine that spreads a stream over `count` instances, each configured with its
    /// [`Partition`], sends `text`: the buckets of the terms the event carries (sorted), with the
    /// event's time, by which a hunt orders each bucket. Most events carry one term; one with
    /// array-valued term fields may carry terms of several buckets, and each of those instances then
    /// keeps and alerts on its own terms only. An event with no bucket (it cannot match, is refused,
    /// excepted, or has no term) changes no history: an engine sends it to one instance (bucket 0,
    /// say), which reports any refusal once. The history is not consulted.
    pub fn route(&mut self, text: &str, count: u32) -> Route {
        let survey = prefilter::survey(text.as_bytes());
        if self.needle.skips_surveyed(text.as_bytes(), &survey) {
            return Route::default();
        }
        // The fast path's reading of a plain raw record, as processing takes it. A partitioned
        // instance's fast path keeps only its own term, so it routes by the full path, which
        // reads every term.
        if !survey.special && self.config.partition.is_none() {
            match self.fast_terms(text.as_bytes()) {
                FastFound::NoMatch | FastFound::MatchedWithoutTerm => return Route::default(),
                FastFound::Term(time) => {
                    return Route {
                        buckets: vec![terms::bucket_of(self.scratch_key.as_bytes(), count)],
                        time: Some(time),
                    };
                }
                FastFound::Undecided => {}
            }
        }
        self.route_matching(text, count)
    }

    /// [`Detector::process`] without the prefilter: every record is parsed. The reference the
    /// prefilter is tested against.
    pub fn process_exact(&mut self, text: &str) -> Result<Vec<String>, EventError> {
        self.stats.events += 1;
        let outcome = self.evaluate(text);
        match &outcome {
            Ok(alerts) => self.stats.alerts += alerts.len() as u64,
            Err(_) => self.stats.errors += 1,
        }
        outcome
    }

    /// Processes a buffer of newline-delimited events in order, as [`Detector::process`] would one
    /// by one, and returns only the lines that raised alerts or errors, with their line index.
    ///
    /// Each line is trimmed of ASCII whitespace (so `\r\n` endings work); blank lines are not events
    /// and are skipped. A line that is not UTF-8 is reported as [`LineError::NotUtf8`] and is not an
    /// event either.
    pub fn process_ndjson(&mut self, buffer: &[u8]) -> Vec<LineOutcome> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut line: u32 = 0;
        while let Some(rest) = buffer.get(start..).filter(|rest| !rest.is_empty()) {
            // One pass finds the line's end and surveys it (trimmed, as `text` is).
            let (length, survey) = prefilter::survey_line(rest);
            let text = rest.get(..length).unwrap_or_default().trim_ascii();
            if !text.is_empty() {
                match self.process_surveyed(text, &survey) {
                    Ok(alerts) if alerts.is_empty() => {}
                    outcome => out.push(LineOutcome { line, outcome }),
                }
            }
            start += length + 1;
            line = line.wrapping_add(1);
        }
        out
    }

    /// Memory the history holds.
    pub fn footprint(&self) -> Footprint {
        #[cfg(target_arch = "wasm32")]
        let linear_memory_bytes = core::arch::wasm32::memory_size(0) as u64 * 65_536;
        #[cfg(not(target_arch = "wasm32"))]
        let linear_memory_bytes = 0;
        Footprint {
            linear_memory_bytes,
            history_bytes: self.history.heap_bytes() as u64,
            term_bytes: self.history.term_bytes() as u64,
            terms: self.history.len() as u64,
        }
    }

    fn identity(&self) -> Identity<'_> {
        Identity {
            rule_id: self.rule.rule_id,
            term_signature: &self.term_signature,
            term_arity: self.profile.terms.len(),
        }
    }
}
