//! A hostile rule component, for tests only: the real component (`newterms-component`, whose exports
//! it wraps and delegates to), except on events whose text holds a marker, where it does what a
//! buggy or malicious component would.
//!
//! | marker | behaviour |
//! |---|---|
//! | `NEWTERMS_TRAP` | panics, which traps |
//! | `NEWTERMS_LOOP` | loops forever |
//! | `NEWTERMS_ALLOC` | allocates without bound |
//! | `NEWTERMS_MALFORMED` | returns an alert that is not JSON |
//!
//! A batch holding a marker event misbehaves as a whole, as a real faulty component would.

#![cfg(target_arch = "wasm32")]
#![allow(missing_docs)]

use newterms_component::bindings::Component as Real;
use newterms_component::bindings::exports::newterms::rule::detector::{
    Config, ConfigError, EventOutcome, ExtractedLine, Extraction, Footprint, FreshTerms, Guest,
    LineOutcome, Observation, RestoreError, Routing, RuleFile, RuleMetadata, RuleStats,
    RuleSummary,
};

/// Does what the marker in `event` asks for, if any; returns the malformed alert for that marker.
fn misbehave(event: &str) -> Option<Vec<String>> {
    if event.contains("NEWTERMS_TRAP") {
        panic!("hostile component: trap marker");
    }
    if event.contains("NEWTERMS_LOOP") {
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
    if event.contains("NEWTERMS_ALLOC") {
        // Megabytes reserved but barely written: the linear memory grows as fast as the guest
        // asks, so the memory cap stops it well before the CPU deadline, even on a loaded machine
        // (filling each megabyte made the page faults race the deadline).
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut megabyte = Vec::with_capacity(1 << 20);
            megabyte.push(1_u8);
            hoard.push(megabyte);
            std::hint::black_box(&hoard);
        }
    }
    event
        .contains("NEWTERMS_MALFORMED")
        .then(|| vec!["this alert is not JSON".to_owned()])
}

struct Hostile;

impl Guest for Hostile {
    fn configure(config: Config) -> Result<(), ConfigError> {
        Real::configure(config)
    }

    fn process_event(event: String) -> EventOutcome {
        match misbehave(&event) {
            Some(malformed) => Ok(malformed),
            None => Real::process_event(event),
        }
    }

    fn process_batch(events: Vec<String>) -> Vec<EventOutcome> {
        // Traps, loops and hoards before any event of the batch is processed.
        let malformed: Vec<_> = events.iter().map(|event| misbehave(event)).collect();
        events
            .into_iter()
            .zip(malformed)
            .map(|(event, malformed)| match malformed {
                Some(malformed) => Ok(malformed),
                None => Real::process_event(event),
            })
            .collect()
    }

    fn route(events: Vec<String>, count: u32) -> Vec<Routing> {
        Real::route(events, count)
    }

    fn process_ndjson(records: Vec<u8>) -> Vec<LineOutcome> {
        let text = String::from_utf8_lossy(&records);
        for line in text.lines() {
            if let Some(malformed) = misbehave(line) {
                return vec![LineOutcome {
                    line: 0,
                    outcome: Ok(malformed),
                }];
            }
        }
        Real::process_ndjson(records)
    }

    fn snapshot() -> Vec<u8> {
        Real::snapshot()
    }

    fn memory_footprint() -> Footprint {
        Real::memory_footprint()
    }

    fn restore(snapshot: Vec<u8>) -> Result<(), RestoreError> {
        Real::restore(snapshot)
    }

    fn snapshot_begin() -> u64 {
        Real::snapshot_begin()
    }

    fn snapshot_read(max_bytes: u32) -> Vec<u8> {
        Real::snapshot_read(max_bytes)
    }

    fn restore_begin(length: u64) {
        Real::restore_begin(length)
    }

    fn restore_write(piece: Vec<u8>) -> Result<(), RestoreError> {
        Real::restore_write(piece)
    }

    fn restore_end() -> Result<(), RestoreError> {
        Real::restore_end()
    }

    fn metadata() -> RuleMetadata {
        let metadata = Real::metadata();
        RuleMetadata {
            name: format!("{} (hostile test build)", metadata.name),
            ..metadata
        }
    }

    fn stats() -> RuleStats {
        Real::stats()
    }

    fn check_rules(rules: Vec<RuleFile>) -> Vec<Result<RuleSummary, String>> {
        Real::check_rules(rules)
    }

    fn configure_rules(config: Config, rules: Vec<RuleFile>) -> Result<(), String> {
        Real::configure_rules(config, rules)
    }

    fn restore_notices() -> Vec<String> {
        Real::restore_notices()
    }

    fn extract(records: Vec<u8>) -> Result<Extraction, String> {
        let text = String::from_utf8_lossy(&records);
        for line in text.lines() {
            if misbehave(line).is_some() {
                // A line past the buffer: an answer the host must not believe.
                return Ok(Extraction {
                    events: 1,
                    matched: 1,
                    excepted: 0,
                    lines: vec![ExtractedLine {
                        line: u32::MAX,
                        outcome: Ok(Observation { time: 0, terms: 1 }),
                    }],
                    term_ends: vec![7],
                    term_bytes: b"garbage".to_vec(),
                });
            }
        }
        Real::extract(records)
    }

    fn decide(extraction: Extraction) -> Result<Vec<FreshTerms>, String> {
        Real::decide(extraction)
    }

    fn alerts_for(event: String, terms: Vec<Vec<u8>>) -> EventOutcome {
        match misbehave(&event) {
            Some(malformed) => Ok(malformed),
            None => Real::alerts_for(event, terms),
        }
    }
}

newterms_component::bindings::export_rule!(Hostile with_types_in newterms_component::bindings);
