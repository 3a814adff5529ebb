//! One running rule: a store, its instance, and typed calls into it.

use wasmtime::{Store, StoreLimits};

use crate::bindings::{Rule, wit};
use crate::error::Error;
use crate::types::{EventError, Footprint, LineOutcome, Metadata, Stats};

/// What the host keeps for an instance: only its resource limits, since the rule imports nothing.
pub struct HostState {
    limits: StoreLimits,
}

impl HostState {
    pub(crate) fn new(limits: StoreLimits) -> Self {
        Self { limits }
    }

    pub(crate) fn limits_mut(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }
}

/// What one event produced: its alerts (JSON documents), or why it was refused.
pub type EventOutcome = Result<Vec<String>, EventError>;

/// A configured rule instance with its own first-seen history.
///
/// After a [`Error::Guest`] the instance is poisoned: make a new one and restore the last snapshot.
pub struct RuleInstance {
    store: Store<HostState>,
    rule: Rule,
}

impl RuleInstance {
    pub(crate) fn new(store: Store<HostState>, rule: Rule) -> Self {
        Self { store, rule }
    }

    pub(crate) fn configure(&mut self, config: &wit::Config) -> Result<(), Error> {
        let detector = self.rule.newterms_rule_detector();
        let outcome = detector
            .call_configure(&mut self.store, config)
            .map_err(guest("configure"))?;
        outcome.map_err(|error| Error::Config(error.into()))
    }

    /// Processes one event (JSON text: raw CloudTrail or ECS).
    pub fn process_event(&mut self, event: &str) -> Result<EventOutcome, Error> {
        let detector = self.rule.newterms_rule_detector();
        let outcome = detector
            .call_process_event(&mut self.store, event)
            .map_err(guest("process-event"))?;
        Ok(outcome.map_err(EventError::from))
    }

    /// Processes events in order in one call; one outcome per event.
    pub fn process_batch(&mut self, events: &[String]) -> Result<Vec<EventOutcome>, Error> {
        let detector = self.rule.newterms_rule_detector();
        let outcomes = detector
            .call_process_batch(&mut self.store, events)
            .map_err(guest("process-batch"))?;
        if outcomes.len() != events.len() {
            return Err(Error::Guest {
                call: "process-batch",
                source: wasmtime::Error::msg(format!(
                    "{} outcomes for {} events",
                    outcomes.len(),
                    events.len()
                )),
            });
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.map_err(EventError::from))
            .collect())
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
        let detector = self.rule.newterms_rule_detector();
        let outcomes = detector
            .call_process_ndjson(&mut self.store, records)
            .map_err(guest("process-ndjson"))?;
        // Cheap plausibility: increasing lines, none past what the buffer can hold.
        let in_order = outcomes.windows(2).all(|pair| pair[0].line < pair[1].line);
        if !in_order
            || outcomes
                .last()
                .is_some_and(|last| last.line as usize >= records.len())
        {
            return Err(Error::Guest {
                call: "process-ndjson",
                source: wasmtime::Error::msg("line outcomes out of order or past the buffer"),
            });
        }
        Ok(outcomes.into_iter().map(LineOutcome::from).collect())
    }

    /// The first-seen history as a snapshot.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, Error> {
        let detector = self.rule.newterms_rule_detector();
        detector
            .call_snapshot(&mut self.store)
            .map_err(guest("snapshot"))
    }

    /// Replaces the history with a snapshot's; on [`Error::Restore`] the history is unchanged.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), Error> {
        let detector = self.rule.newterms_rule_detector();
        let outcome = detector
            .call_restore(&mut self.store, snapshot)
            .map_err(guest("restore"))?;
        outcome.map_err(|error| Error::Restore(error.into()))
    }

    /// The rule's identity and configuration.
    pub fn metadata(&mut self) -> Result<Metadata, Error> {
        let detector = self.rule.newterms_rule_detector();
        let metadata = detector
            .call_metadata(&mut self.store)
            .map_err(guest("metadata"))?;
        Ok(metadata.into())
    }

    /// Memory the instance holds: its whole linear memory and the history's share of it.
    pub fn footprint(&mut self) -> Result<Footprint, Error> {
        let detector = self.rule.newterms_rule_detector();
        let footprint = detector
            .call_memory_footprint(&mut self.store)
            .map_err(guest("memory-footprint"))?;
        Ok(footprint.into())
    }

    /// The rule's counters.
    pub fn stats(&mut self) -> Result<Stats, Error> {
        let detector = self.rule.newterms_rule_detector();
        let stats = detector
            .call_stats(&mut self.store)
            .map_err(guest("stats"))?;
        Ok(stats.into())
    }
}

fn guest(call: &'static str) -> impl FnOnce(wasmtime::Error) -> Error {
    move |source| Error::Guest { call, source }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::{EventError, Limits, LineError, RuleComponent, RuleConfig, Sandbox};

    #[test]
    fn ndjson_reports_sparse_outcomes_by_line() {
        let sandbox = Sandbox::new(Limits::default()).unwrap();
        let component = RuleComponent::embedded(&sandbox).unwrap();
        let mut rule = component.instantiate(&RuleConfig::default()).unwrap();
        let invoke = r#"{"eventVersion":"1.08","eventTime":"2024-05-01T00:00:00Z","eventSource":"lambda.amazonaws.com","eventName":"Invoke","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a","accountId":"1","userName":"a"}}"#;
        let mut buffer = Vec::new();
        buffer.extend_from_slice(b"{\"eventSource\":\"s3.amazonaws.com\"}\n"); // 0: nothing
        buffer.extend_from_slice(b"\r\n"); // 1: blank
        buffer.extend_from_slice(invoke.as_bytes()); // 2: alert
        buffer.extend_from_slice(b"\r\n");
        buffer.extend_from_slice(b"{\"eventName\": \"\xff\"}\n"); // 3: not UTF-8
        buffer.extend_from_slice(b"[1, 2]\n"); // 4: not an object
        buffer.extend_from_slice(invoke.as_bytes()); // 5: known term, no trailing newline
        let outcomes = rule.process_ndjson(&buffer).unwrap();
        let lines: Vec<u32> = outcomes.iter().map(|outcome| outcome.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert_eq!(outcomes[0].outcome.as_ref().map(Vec::len), Ok(1));
        assert_eq!(outcomes[1].outcome, Err(LineError::NotUtf8(15)));
        assert_eq!(
            outcomes[2].outcome,
            Err(LineError::Event(EventError::NotAnObject))
        );
        let stats = rule.stats().unwrap();
        assert_eq!((stats.events, stats.alerts, stats.errors), (4, 1, 1));
        assert!(rule.process_ndjson(b"").unwrap().is_empty());
    }
}
