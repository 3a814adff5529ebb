//! One running rule: a store, its instance, and typed calls into it under the sandbox's limits.

use wasmtime::{Store, Trap};

use crate::bindings::{Rule, wit};
use crate::error::{Error, Fault};
use crate::sandbox::{MemoryLimiter, Sandbox};
use crate::types::{
    EventError, Extraction, Footprint, FreshTerms, LineOutcome, Metadata, Route, RuleFile,
    RuleSummary, Stats,
};

/// What the host keeps for an instance: only its memory limiter, since the rule imports nothing.
pub struct HostState {
    limiter: MemoryLimiter,
}

impl HostState {
    pub(crate) fn new(limiter: MemoryLimiter) -> Self {
        Self { limiter }
    }
}

/// The most of a snapshot that crosses into or out of the component in one call.
const SNAPSHOT_PIECE: u32 = 1 << 20;

/// What one event produced: its alerts (JSON documents), or why it was refused.
pub type EventOutcome = Result<Vec<String>, EventError>;

/// A configured rule instance with its own first-seen history.
///
/// After an [`Error::Guest`] the instance is poisoned: make a new one and restore the last snapshot.
pub struct RuleInstance {
    sandbox: Sandbox,
    store: Store<HostState>,
    rule: Rule,
}

impl RuleInstance {
    pub(crate) fn new(
        sandbox: &Sandbox,
        rule_pre: &crate::bindings::RulePre<HostState>,
    ) -> wasmtime::Result<Self> {
        let limiter = MemoryLimiter::new(sandbox.limits().max_memory_bytes);
        let mut store = Store::new(sandbox.engine(), HostState::new(limiter));
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(sandbox.deadline_ticks());
        let rule = rule_pre.instantiate(&mut store)?;
        Ok(Self {
            sandbox: sandbox.clone(),
            store,
            rule,
        })
    }

    /// Runs one call with a fresh CPU deadline, and names the fault if it fails.
    fn call<T>(
        &mut self,
        name: &'static str,
        call: impl FnOnce(&wit::Guest, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, Error> {
        self.store.set_epoch_deadline(self.sandbox.deadline_ticks());
        let outcome = call(self.rule.newterms_rule_detector(), &mut self.store);
        let memory_exceeded = self.store.data_mut().limiter.take_exceeded();
        outcome.map_err(|source| {
            let fault = if memory_exceeded {
                Fault::MemoryLimit(self.sandbox.limits().max_memory_bytes)
            } else if source.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                Fault::CpuDeadline(self.sandbox.limits().call_deadline)
            } else {
                Fault::Trap
            };
            Error::Guest {
                call: name,
                fault,
                source,
            }
        })
    }

    pub(crate) fn configure(&mut self, config: &wit::Config) -> Result<(), Error> {
        let outcome = self.call("configure", |detector, store| {
            detector.call_configure(store, config)
        })?;
        outcome.map_err(|error| Error::Config(error.into()))
    }

    /// Configures the component with rule files run in place of the built-in rule.
    pub(crate) fn configure_rules(
        &mut self,
        config: &wit::Config,
        rules: &[RuleFile],
    ) -> Result<(), Error> {
        let files: Vec<wit::RuleFile> = rules.iter().map(wit::RuleFile::from).collect();
        let outcome = self.call("configure-rules", |detector, store| {
            detector.call_configure_rules(store, config, &files)
        })?;
        outcome.map_err(Error::Rules)
    }

    /// Each rule file loaded by the component, or why it refuses it (the message names the file).
    pub fn check_rules(
        &mut self,
        rules: &[RuleFile],
    ) -> Result<Vec<Result<RuleSummary, String>>, Error> {
        let files: Vec<wit::RuleFile> = rules.iter().map(wit::RuleFile::from).collect();
        let checked = self.call("check-rules", |detector, store| {
            detector.call_check_rules(store, &files)
        })?;
        Ok(checked
            .into_iter()
            .map(|outcome| outcome.map(RuleSummary::from))
            .collect())
    }

    /// What the last restore did not keep of a rule pack's history (a rule removed or changed).
    pub fn restore_notices(&mut self) -> Result<Vec<String>, Error> {
        self.call("restore-notices", |detector, store| {
            detector.call_restore_notices(store)
        })
    }

    /// Processes one event (JSON text: raw CloudTrail or ECS).
    pub fn process_event(&mut self, event: &str) -> Result<EventOutcome, Error> {
        let outcome = self.call("process-event", |detector, store| {
            detector.call_process_event(store, event)
        })?;
        checked(outcome).map_err(|what| malformed("process-event", what))
    }

    /// Processes events in order in one call; one outcome per event.
    pub fn process_batch(&mut self, events: &[String]) -> Result<Vec<EventOutcome>, Error> {
        let outcomes = self.call("process-batch", |detector, store| {
            detector.call_process_batch(store, events)
        })?;
        if outcomes.len() != events.len() {
            let what = format!("{} outcomes for {} events", outcomes.len(), events.len());
            return Err(malformed("process-batch", what));
        }
        outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| {
                checked(outcome)
                    .map_err(|what| malformed("process-batch", format!("event {index}: {what}")))
            })
            .collect()
    }

    /// For each event, where it goes when an engine runs `count` instances each with its
    /// [`crate::Partition`]: the buckets of its terms and its time (see the WIT's `route`).
    /// Stateless.
    pub fn route(&mut self, events: &[String], count: u32) -> Result<Vec<Route>, Error> {
        let routes = self.call("route", |detector, store| {
            detector.call_route(store, events, count)
        })?;
        if routes.len() != events.len() {
            let what = format!("{} answers for {} events", routes.len(), events.len());
            return Err(malformed("route", what));
        }
        if routes
            .iter()
            .flat_map(|route| &route.buckets)
            .any(|&bucket| bucket >= count.max(1))
        {
            return Err(malformed("route", format!("a bucket beyond {count}")));
        }
        Ok(routes.into_iter().map(Route::from).collect())
    }

    /// Processes a buffer of newline-delimited events (NDJSON) in order in one call, as
    /// [`RuleInstance::process_event`] would one by one, and returns only the lines that raised
    /// alerts or errors, each with its 0-based line index in `records`, in increasing order.
    ///
    /// Every `\n` ends a line; each line is trimmed of ASCII whitespace (so `\r\n` works) and blank
    /// lines are skipped. A line that is not UTF-8 comes back as [`crate::LineError::NotUtf8`] and is
    /// not counted as an event. One copy of the whole buffer crosses the boundary, and a batch that
    /// raises nothing returns an empty list: this is the fast way to feed the rule.
    pub fn process_ndjson(&mut self, records: &[u8]) -> Result<Vec<LineOutcome>, Error> {
        let outcomes = self.call("process-ndjson", |detector, store| {
            detector.call_process_ndjson(store, records)
        })?;
        // Cheap plausibility: increasing lines, none past what the buffer can hold.
        let in_order = outcomes.windows(2).all(|pair| pair[0].line < pair[1].line);
        let in_buffer = outcomes
            .last()
            .is_none_or(|last| (last.line as usize) < records.len().max(1));
        if !in_order || !in_buffer {
            let what = "line outcomes out of order or past the buffer".to_owned();
            return Err(malformed("process-ndjson", what));
        }
        let outcomes: Vec<LineOutcome> = outcomes.into_iter().map(LineOutcome::from).collect();
        for outcome in &outcomes {
            if let Ok(alerts) = &outcome.outcome {
                check_alerts(alerts).map_err(|what| {
                    malformed("process-ndjson", format!("line {}: {what}", outcome.line))
                })?;
            }
        }
        Ok(outcomes)
    }

    /// The stateless half of [`RuleInstance::process_ndjson`] (the WIT's `extract`): for each line
    /// of `records` that observes terms or is refused, its time and encoded terms or why, and the
    /// counters processing would add; the history is neither read nor changed, so any number of
    /// instances can extract consecutive buffers at once. Lines are checked to be increasing and
    /// no more than the buffer could hold. A rule pack's terms carry their rule's place in the
    /// pack; to the host they are opaque bytes, as the built-in rule's are.
    pub fn extract(&mut self, records: &[u8]) -> Result<Extraction, Error> {
        let extraction = self
            .call("extract", |detector, store| {
                detector.call_extract(store, records)
            })?
            .map_err(Error::Rules)?;
        let in_order = extraction
            .lines
            .windows(2)
            .all(|pair| pair[0].line < pair[1].line);
        // Cheap plausibility, as for `process-ndjson` (counting the lines would cost a pass over
        // the buffer); the scan checks each line against its batch.
        let in_buffer = extraction
            .lines
            .last()
            .is_none_or(|last| (last.line as usize) < records.len().max(1));
        if !in_order || !in_buffer {
            let what = "lines out of order or past the buffer".to_owned();
            return Err(malformed("extract", what));
        }
        match Extraction::try_from(extraction) {
            Ok(extraction) if extraction.counts_add_up() => Ok(extraction),
            _ => {
                let what = "terms that are not the lines' (ends out of order or past their bytes, or counts that do not add up)".to_owned();
                Err(malformed("extract", what))
            }
        }
    }

    /// The stateful half (the WIT's `decide`): applies `extraction` to the history as processing
    /// its buffer would have, counters included, and returns its lines whose terms were new, each
    /// checked to be a line of `extraction` that observes those terms.
    /// `extraction` is only borrowed mutably so that its terms can be lent to the call rather than
    /// copied; it is as it was when this returns.
    pub fn decide(&mut self, extraction: &mut Extraction) -> Result<Vec<FreshTerms>, Error> {
        let sent = wit::Extraction::taking_terms(extraction);
        let called = self.call("decide", |detector, store| {
            detector.call_decide(store, &sent)
        });
        sent.give_back(extraction);
        let fresh = called?.map_err(Error::Rules)?;
        let mut lines = extraction.lines_with_terms();
        for new in &fresh {
            let observed = lines
                .find(|(line, _)| line.line == new.line)
                .and_then(|(line, terms)| line.outcome.is_ok().then_some(terms));
            let plausible = observed.is_some_and(|terms| {
                new.terms.windows(2).all(|pair| pair[0] < pair[1])
                    && new.terms.iter().all(|&term| (term as usize) < terms.len())
            });
            if !plausible {
                let what = format!("new terms of line {} that it does not observe", new.line);
                return Err(malformed("decide", what));
            }
        }
        Ok(fresh.into_iter().map(FreshTerms::from).collect())
    }

    /// The alerts of `event` for its terms among `terms` (encodings [`RuleInstance::decide`] found
    /// new), as [`RuleInstance::process_event`] would raise them: one for each of `terms`, else the
    /// answer is malformed (`decide` found them in this event). Stateless.
    pub fn alerts_for(&mut self, event: &str, terms: &[Vec<u8>]) -> Result<Vec<String>, Error> {
        let outcome = self.call("alerts-for", |detector, store| {
            detector.call_alerts_for(store, event, terms)
        })?;
        match checked(outcome).map_err(|what| malformed("alerts-for", what))? {
            Ok(alerts) if alerts.len() == terms.len() => Ok(alerts),
            Ok(alerts) => {
                let what = format!("{} alerts for {} new terms", alerts.len(), terms.len());
                Err(malformed("alerts-for", what))
            }
            Err(error) => {
                let what = format!("an event whose terms it found refused: {error}");
                Err(malformed("alerts-for", what))
            }
        }
    }

    /// Memory the instance holds: its whole linear memory and the history's share of it.
    pub fn footprint(&mut self) -> Result<Footprint, Error> {
        let footprint = self.call("memory-footprint", |detector, store| {
            detector.call_memory_footprint(store)
        })?;
        Ok(footprint.into())
    }

    /// The first-seen history as a snapshot. It crosses the boundary in pieces, so that the
    /// component's linear memory (which never shrinks) does not grow by a whole snapshot.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        let length = self.call("snapshot-begin", |detector, store| {
            detector.call_snapshot_begin(store)
        })?;
        // The length is the component's word: reserve no more than its memory could hold.
        let limit = self.sandbox.limits().max_memory_bytes as u64;
        let mut snapshot = Vec::with_capacity(usize::try_from(length.min(limit)).unwrap_or(0));
        loop {
            let piece = self.call("snapshot-read", |detector, store| {
                detector.call_snapshot_read(store, SNAPSHOT_PIECE)
            })?;
            if piece.is_empty() {
                break;
            }
            if piece.len() > SNAPSHOT_PIECE as usize
                || (snapshot.len() + piece.len()) as u64 > length
            {
                let what = format!(
                    "a piece of {} bytes after {} of a {length}-byte snapshot",
                    piece.len(),
                    snapshot.len()
                );
                return Err(malformed("snapshot-read", what));
            }
            snapshot.extend_from_slice(&piece);
        }
        if snapshot.len() as u64 != length {
            let what = format!("{} bytes of a {length}-byte snapshot", snapshot.len());
            return Err(malformed("snapshot-read", what));
        }
        Ok(snapshot)
    }

    /// Replaces the history with a snapshot's; on [`Error::Restore`] the history is unchanged.
    /// The snapshot crosses the boundary in pieces, as in [`RuleInstance::snapshot`].
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), Error> {
        self.call("restore-begin", |detector, store| {
            detector.call_restore_begin(store, snapshot.len() as u64)
        })?;
        for piece in snapshot.chunks(SNAPSHOT_PIECE as usize) {
            let outcome = self.call("restore-write", |detector, store| {
                detector.call_restore_write(store, piece)
            })?;
            outcome.map_err(|error| Error::Restore(error.into()))?;
        }
        let outcome = self.call("restore-end", |detector, store| {
            detector.call_restore_end(store)
        })?;
        outcome.map_err(|error| Error::Restore(error.into()))
    }

    /// The rule's identity and configuration.
    pub fn metadata(&mut self) -> Result<Metadata, Error> {
        let metadata = self.call("metadata", |detector, store| detector.call_metadata(store))?;
        Ok(metadata.into())
    }

    /// The rule's counters.
    pub fn stats(&mut self) -> Result<Stats, Error> {
        let stats = self.call("stats", |detector, store| detector.call_stats(store))?;
        Ok(stats.into())
    }
}

/// The outcome in host types, once every alert is checked to be a JSON object: a component that
/// answers anything else is faulty, and its answer must not reach the alert stream.
fn checked(outcome: Result<Vec<String>, wit::EventError>) -> Result<EventOutcome, String> {
    match outcome {
        Ok(alerts) => check_alerts(&alerts).map(|()| Ok(alerts)),
        Err(error) => Ok(Err(error.into())),
    }
}

/// Every alert is a JSON object, or says which one is not.
fn check_alerts(alerts: &[String]) -> Result<(), String> {
    for alert in alerts {
        let is_object = alert.trim_start().starts_with('{')
            && serde_json::from_str::<serde::de::IgnoredAny>(alert).is_ok();
        if !is_object {
            let shown: String = alert.chars().take(80).collect();
            return Err(format!("an alert that is not a JSON object: {shown:?}"));
        }
    }
    Ok(())
}

fn malformed(call: &'static str, what: String) -> Error {
    Error::Guest {
        call,
        fault: Fault::Malformed(what.clone()),
        source: wasmtime::Error::msg(what),
    }
}
