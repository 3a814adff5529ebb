//! The streaming new-terms engine: query, exceptions, terms, first-seen history, alerts.

use std::borrow::Cow;
use std::num::NonZeroUsize;

use serde_json::Value;

use crate::alert::{AlertRule, AlertSource};
use crate::cloudtrail;
use crate::definition::{
    self, LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL, Profile, ProfileDefinition, RuleDefinition,
};
use crate::fastpath::{self, QuoteIndex, Slot};
use crate::fields;
use crate::history::{History, TermKey};
use crate::prefilter::{self, Needle, Survey};
use crate::snapshot::{self, Decoder, Identity, RestoreError, Visit, Writer};
use crate::time::{self, EpochMillis};
use crate::wildcard;

/// History capacity when the configuration names none.
pub const DEFAULT_CAPACITY: u32 = 1_000_000;
/// Most term combinations one event may carry (array-valued term fields multiply).
pub const MAX_TERMS_PER_EVENT: usize = 1_024;
/// Event times outside years 0001 to 9999 are refused, as Elasticsearch's `date` type refuses them.
const TIME_RANGE: std::ops::RangeInclusive<EpochMillis> = -62_135_596_800_000..=253_402_300_799_999;

/// How the rule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Which reading of the rule.
    pub profile: Profile,
    /// Window override in milliseconds.
    pub window_ms: Option<u64>,
    /// Exceptions: matching events neither alert nor count.
    pub exceptions: Vec<Exception>,
    /// History capacity; `None` for [`DEFAULT_CAPACITY`].
    pub capacity: Option<u32>,
    /// Build history without raising alerts.
    pub learn: bool,
    /// Key for hashing term values.
    pub hash_key: (u64, u64),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: Profile::Default,
            window_ms: None,
            exceptions: Vec::new(),
            capacity: None,
            learn: false,
            hash_key: (0, 0),
        }
    }
}

/// Events with a value of `field` matching one of `patterns` are dropped after the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// ECS field name.
    pub field: String,
    /// KQL wildcard patterns.
    pub patterns: Vec<String>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A capacity of zero.
    ZeroCapacity,
    /// A window of zero.
    InvalidWindow(u64),
    /// An exception without field or patterns.
    InvalidException(String),
}

/// Why an event was refused; it changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Not JSON, or nested too deep.
    MalformedJson(String),
    /// JSON, but not an object.
    NotAnObject,
    /// Matches the query but has no time.
    MissingTime,
    /// Matches the query but its time does not parse.
    InvalidTime(String),
    /// More term combinations than [`MAX_TERMS_PER_EVENT`].
    TooManyTerms(u64),
}

/// Why one line of a newline-delimited buffer raised no alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line is not UTF-8; carries the offset of the first invalid byte within the (trimmed)
    /// line. Such a line is not an event: it changes no counter.
    NotUtf8(u32),
    /// The event was refused.
    Event(EventError),
}

/// What one line of [`Detector::process_ndjson`] produced, when it produced anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineOutcome {
    /// 0-based index of the line within the buffer (every `\n` ends a line, blank lines included).
    pub line: u32,
    /// The alerts it raised (never empty), or why it was refused.
    pub outcome: Result<Vec<String>, LineError>,
}

/// Memory the rule holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// The whole linear memory when running as WebAssembly, else 0.
    pub linear_memory_bytes: u64,
    /// Bytes allocated by the history.
    pub history_bytes: u64,
    /// Bytes of the encoded terms themselves.
    pub term_bytes: u64,
    /// Terms in history.
    pub terms: u64,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Events matching the query.
    pub matched: u64,
    /// Matching events dropped by an exception.
    pub excepted: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Events refused.
    pub errors: u64,
    /// Terms in history.
    pub terms: u64,
    /// Terms evicted for room.
    pub evictions: u64,
}

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
    /// A snapshot being read in pieces. It walks the history, so every change to the history
    /// ends it.
    snapshot_writer: Option<Writer>,
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
        let capacity = config.capacity.unwrap_or(DEFAULT_CAPACITY);
        let capacity = NonZeroUsize::new(capacity as usize).ok_or(ConfigError::ZeroCapacity)?;
        if config.window_ms == Some(0) {
            return Err(ConfigError::InvalidWindow(0));
        }
        for exception in &config.exceptions {
            if exception.field.is_empty() {
                return Err(ConfigError::InvalidException(
                    "an exception names no field".into(),
                ));
            }
            if exception.patterns.is_empty() {
                return Err(ConfigError::InvalidException(format!(
                    "the exception on {} has no values",
                    exception.field
                )));
            }
        }
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
        self.config.capacity.unwrap_or(DEFAULT_CAPACITY)
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

    /// Whether the prefilter or the fast path settles the record (UTF-8 text) with nothing to
    /// report; when it does, its effect on the history is applied, but not the event count.
    fn quiet(&mut self, text: &[u8], survey: &Survey) -> bool {
        self.needle.skips_surveyed(text, survey) || (!survey.special && self.decided_quietly(text))
    }

    /// The fast path for records the prefilter lets through: reads a plain raw CloudTrail record
    /// without building a JSON tree (see [`crate::fastpath`]) and, when it is certain that full
    /// evaluation would raise nothing and report no error, applies its effect on counters and
    /// history and says so. Anything else (ECS documents, escapes, unusual types, exceptions, a bad
    /// time, and any event that raises an alert, whose document only the full path builds) is left
    /// to [`Detector::process_exact`], with nothing changed.
    fn decided_quietly(&mut self, text: &[u8]) -> bool {
        let Some(fields) = fastpath::scan_plain(text, &mut self.quotes) else {
            return false;
        };
        if !fields.raw {
            return false;
        }
        match definition::query_holds(self.rule.query, &fields) {
            None => return false,
            Some(false) => return true,
            Some(true) => {}
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
        for (value, term) in values.iter_mut().zip(self.profile.terms) {
            let mut found = None;
            for source in term.sources {
                match fields.ecs(source) {
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
        self.snapshot_writer = None;
        if self.config.learn {
            self.history.observe(key, time, self.window_ms);
        } else if !self.history.observe_known(key, time, self.window_ms) {
            return false;
        }
        self.stats.matched += 1;
        true
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
                let outcome = if survey.non_ascii
                    && let Err(error) = std::str::from_utf8(text)
                {
                    Some(Err(LineError::NotUtf8(
                        u32::try_from(error.valid_up_to()).unwrap_or(u32::MAX),
                    )))
                } else if self.quiet(text, &survey) {
                    self.stats.events += 1;
                    None
                } else {
                    // Plain ASCII, or checked above: this cannot fail.
                    let text = String::from_utf8_lossy(text);
                    match self.process_exact(&text) {
                        Ok(alerts) if alerts.is_empty() => None,
                        Ok(alerts) => Some(Ok(alerts)),
                        Err(error) => Some(Err(LineError::Event(error))),
                    }
                };
                if let Some(outcome) = outcome {
                    out.push(LineOutcome { line, outcome });
                }
            }
            start += length + 1;
            line = line.wrapping_add(1);
        }
        out
    }

    fn evaluate(&mut self, text: &str) -> Result<Vec<String>, EventError> {
        let document: Value = serde_json::from_str(text)
            .map_err(|error| EventError::MalformedJson(error.to_string()))?;
        let Value::Object(object) = &document else {
            return Err(EventError::NotAnObject);
        };
        let raw = cloudtrail::is_raw_record(object);
        let mapped;
        let ecs = if raw {
            mapped = cloudtrail::to_ecs(object);
            &mapped
        } else {
            &document
        };

        if definition::query_holds(self.rule.query, &fields::Document(ecs)) != Some(true) {
            return Ok(Vec::new());
        }
        self.stats.matched += 1;
        let time = event_time(ecs)?;
        if self.is_excepted(ecs) {
            self.stats.excepted += 1;
            return Ok(Vec::new());
        }
        let Some(terms) = self.terms(ecs)? else {
            return Ok(Vec::new());
        };

        let source = AlertSource {
            ecs,
            original: raw.then_some(text),
            text,
            time,
        };
        let raiser = AlertRule {
            rule: self.rule,
            profile: self.profile,
            window_ms: self.window_ms,
        };
        let mut alerts = Vec::new();
        let mut key = TermKey::default();
        self.snapshot_writer = None;
        for values in terms {
            let values: Vec<&str> = values.iter().map(|value| value.as_ref()).collect();
            key.encode(values.iter().copied());
            let new = self.history.observe(key.as_bytes(), time, self.window_ms);
            if new && !self.config.learn {
                alerts.push(raiser.alert(&source, &values, key.as_bytes()));
            }
        }
        Ok(alerts)
    }

    fn is_excepted(&self, ecs: &Value) -> bool {
        self.config.exceptions.iter().any(|exception| {
            fields::values(ecs, &exception.field).iter().any(|value| {
                exception
                    .patterns
                    .iter()
                    .any(|pattern| wildcard::matches(pattern, value))
            })
        })
    }

    /// Every combination of the term fields' values, or `None` when a field has no value.
    fn terms<'a>(&self, ecs: &'a Value) -> Result<Option<Vec<Vec<Cow<'a, str>>>>, EventError> {
        let mut per_field: Vec<Vec<Cow<'a, str>>> = Vec::with_capacity(self.profile.terms.len());
        for term in self.profile.terms {
            let mut values = term
                .sources
                .iter()
                .map(|source| fields::values(ecs, source))
                .find(|values| !values.is_empty())
                .unwrap_or_default();
            dedup_in_order(&mut values);
            if values.is_empty() {
                return Ok(None);
            }
            per_field.push(values);
        }
        let combinations = per_field
            .iter()
            .try_fold(1_usize, |product, values| product.checked_mul(values.len()))
            .filter(|&count| count <= MAX_TERMS_PER_EVENT);
        let Some(combinations) = combinations else {
            let count = per_field.iter().fold(1_u64, |product, values| {
                product.saturating_mul(values.len() as u64)
            });
            return Err(EventError::TooManyTerms(count));
        };

        // Mixed-radix counting over the fields: the last field varies fastest.
        let mut out = Vec::with_capacity(combinations);
        for index in 0..combinations {
            let mut rest = index;
            let mut values = Vec::with_capacity(per_field.len());
            for field_values in per_field.iter().rev() {
                values.push(field_values[rest % field_values.len()].clone());
                rest /= field_values.len();
            }
            values.reverse();
            out.push(values);
        }
        Ok(Some(out))
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

    /// The history as a snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        snapshot::encode(
            &self.identity(),
            self.history.evictions(),
            self.history.len(),
            self.history.oldest_first(),
        )
    }

    /// Starts a snapshot to be read in pieces with [`Detector::snapshot_read`] and returns its
    /// length. Any change to the history before the last piece ends it.
    pub fn snapshot_begin(&mut self) -> u64 {
        let writer = Writer::new(&self.identity(), &self.history);
        let length = writer.length();
        self.snapshot_writer = Some(writer);
        length
    }

    /// The next at most `max_bytes` bytes of the snapshot begun; empty once all were read, or if
    /// none was begun or the history changed since.
    pub fn snapshot_read(&mut self, max_bytes: usize) -> Vec<u8> {
        let Some(writer) = &mut self.snapshot_writer else {
            return Vec::new();
        };
        let piece = writer.read(&self.history, max_bytes);
        if piece.is_empty() {
            self.snapshot_writer = None;
        }
        piece
    }

    /// Replaces the history with a snapshot's. On error the history is unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), RestoreError> {
        self.restore_begin(bytes.len() as u64);
        self.restore_write(bytes)?;
        self.restore_end()
    }

    /// Starts a restore from a snapshot of `length` bytes, given in pieces to
    /// [`Detector::restore_write`]; the history is replaced by [`Detector::restore_end`] only if
    /// the whole snapshot reads. A restore already begun is dropped.
    pub fn restore_begin(&mut self, length: u64) {
        let capacity = NonZeroUsize::new(self.capacity() as usize).unwrap_or(NonZeroUsize::MIN);
        let history = History::new(capacity, self.config.hash_key);
        self.restoring = Some((Decoder::new(length), history));
    }

    /// The next piece of the snapshot begun. An error ends the restore; the history is unchanged.
    pub fn restore_write(&mut self, piece: &[u8]) -> Result<(), RestoreError> {
        let Some((mut decoder, mut history)) = self.restoring.take() else {
            return Err(RestoreError::Corrupt("no restore was begun".into()));
        };
        // Straight from the pieces into the new history.
        decoder.write(piece, Some(&self.identity()), |visit| match visit {
            Visit::Count {
                entries,
                term_bytes,
            } => history.reserve(entries, term_bytes),
            Visit::Entry(term, last_seen) => history.insert(term, last_seen),
        })?;
        self.restoring = Some((decoder, history));
        Ok(())
    }

    /// Ends the restore begun: the history becomes the snapshot's if all of it was written and it
    /// reads; otherwise the history is unchanged.
    pub fn restore_end(&mut self) -> Result<(), RestoreError> {
        let Some((mut decoder, mut history)) = self.restoring.take() else {
            return Err(RestoreError::Corrupt("no restore was begun".into()));
        };
        let evictions = decoder.finish()?;
        history.add_evictions(evictions);
        self.history = history;
        self.snapshot_writer = None;
        Ok(())
    }

    fn identity(&self) -> Identity<'_> {
        Identity {
            rule_id: self.rule.rule_id,
            term_signature: &self.term_signature,
            term_arity: self.profile.terms.len(),
        }
    }
}

fn dedup_in_order(values: &mut Vec<Cow<'_, str>>) {
    let mut index = 0;
    while index < values.len() {
        if values[..index].contains(&values[index]) {
            values.remove(index);
        } else {
            index += 1;
        }
    }
}

/// The event's time from `@timestamp`: ISO 8601, or epoch milliseconds as Elasticsearch also accepts.
fn event_time(ecs: &Value) -> Result<EpochMillis, EventError> {
    let values = fields::values(ecs, "@timestamp");
    let [value] = values.as_slice() else {
        return Err(if values.is_empty() {
            EventError::MissingTime
        } else {
            EventError::InvalidTime(values.join(", "))
        });
    };
    time::parse_iso8601(value)
        .or_else(|| epoch_millis(value))
        .filter(|millis| TIME_RANGE.contains(millis))
        .ok_or_else(|| EventError::InvalidTime(value.to_string()))
}

fn epoch_millis(value: &str) -> Option<EpochMillis> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}
