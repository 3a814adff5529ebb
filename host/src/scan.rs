//! Feeding a rule instance from inputs, in batches, and writing its alerts.

use std::fmt;
use std::io::{self, Write};

use crate::error::Error;
use crate::input::{InputError, Location, Record};
use crate::instance::RuleInstance;
use crate::types::EventError;

/// How events are grouped into calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most events per call.
    pub events: usize,
    /// Most bytes of event text per call (a batch holds at least one event).
    pub bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        // Crossing into the component costs ~100 ns per call: 1,024 events amortise it well, and
        // 8 MiB bounds the copy into the guest's memory.
        Self {
            events: 1_024,
            bytes: 8 << 20,
        }
    }
}

/// Something reported about one input item that is not an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// The input could not be read as an event.
    Input(InputError),
    /// The rule refused the event.
    Event {
        /// Where the event was.
        location: Location,
        /// Why.
        error: EventError,
    },
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::Input(error) => error.fmt(f),
            Diagnostic::Event { location, error } => write!(f, "{location}: {error}"),
        }
    }
}

/// What a scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Events handed to the rule.
    pub events: u64,
    /// Alerts written.
    pub alerts: u64,
    /// Input items that were not events (not UTF-8, malformed delivery documents, read errors).
    pub input_errors: u64,
    /// Inputs that could not be opened or were cut short by a read error.
    pub unreadable_inputs: u64,
    /// Events the rule refused.
    pub event_errors: u64,
}

/// Why a scan stopped early.
#[derive(Debug)]
pub enum ScanError {
    /// The rule component failed.
    Rule(Error),
    /// Alerts could not be written.
    Output(io::Error),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Rule(_) => f.write_str("the rule failed"),
            ScanError::Output(_) => f.write_str("cannot write alerts"),
        }
    }
}

impl std::error::Error for ScanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScanError::Rule(error) => Some(error),
            ScanError::Output(error) => Some(error),
        }
    }
}

/// Runs every item of `records` through `rule` in batches, writes each alert as one line to `alerts`
/// (flushed after every batch), and hands everything else to `report`.
pub fn scan(
    rule: &mut RuleInstance,
    records: impl Iterator<Item = Result<Record, InputError>>,
    limits: BatchLimits,
    alerts: &mut dyn Write,
    report: &mut dyn FnMut(Diagnostic),
) -> Result<ScanSummary, ScanError> {
    let mut summary = ScanSummary::default();
    let mut texts: Vec<String> = Vec::with_capacity(limits.events);
    let mut locations: Vec<Location> = Vec::with_capacity(limits.events);
    let mut batch_bytes = 0;
    let mut records = records;
    loop {
        let next = records.next();
        let end = next.is_none();
        match next {
            Some(Ok(record)) => {
                batch_bytes += record.text.len();
                texts.push(record.text);
                locations.push(record.location);
            }
            Some(Err(error)) => {
                summary.input_errors += 1;
                summary.unreadable_inputs += u64::from(error.unreadable);
                report(Diagnostic::Input(error));
            }
            None => {}
        }
        let full = texts.len() >= limits.events || batch_bytes >= limits.bytes;
        if !texts.is_empty() && (full || end) {
            let outcomes = rule.process_batch(&texts).map_err(ScanError::Rule)?;
            summary.events += texts.len() as u64;
            for (outcome, location) in outcomes.into_iter().zip(locations.drain(..)) {
                match outcome {
                    Ok(raised) => {
                        for alert in raised {
                            alerts
                                .write_all(alert.as_bytes())
                                .and_then(|()| alerts.write_all(b"\n"))
                                .map_err(ScanError::Output)?;
                            summary.alerts += 1;
                        }
                    }
                    Err(error) => {
                        summary.event_errors += 1;
                        report(Diagnostic::Event { location, error });
                    }
                }
            }
            alerts.flush().map_err(ScanError::Output)?;
            texts.clear();
            batch_bytes = 0;
        }
        if end {
            return Ok(summary);
        }
    }
}
