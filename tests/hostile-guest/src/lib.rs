//! A hostile rule component, for tests only: the real detector, except on events whose text holds a
//! marker, where it does what a buggy or malicious component would.
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
#![allow(unsafe_code, missing_docs)] // the canonical-ABI glue and items that wit-bindgen generates

use std::cell::RefCell;

use newterms_guest::detector::LineError;
use newterms_guest::{Config, Detector, Profile};

wit_bindgen::generate!({
    world: "rule",
    path: "../../wit",
});

use exports::newterms::rule::detector::{self as wit, Guest, RuleMetadata, RuleStats};

thread_local! {
    static DETECTOR: RefCell<Detector> = RefCell::new(Detector::default());
}

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
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
    event
        .contains("NEWTERMS_MALFORMED")
        .then(|| vec!["this alert is not JSON".to_owned()])
}

fn process(detector: &mut Detector, event: &str) -> Result<Vec<String>, wit::EventError> {
    if let Some(malformed) = misbehave(event) {
        return Ok(malformed);
    }
    detector
        .process(event)
        .map_err(|_| wit::EventError::NotAnObject)
}

struct Component;

impl Guest for Component {
    fn configure(config: wit::Config) -> Result<(), wit::ConfigError> {
        let profile = match config.profile {
            wit::Profile::Default => Profile::Default,
            wit::Profile::Elastic => Profile::Elastic,
        };
        let detector = Detector::new(Config {
            profile,
            window_ms: config.window_ms,
            capacity: config.capacity,
            learn: config.learn,
            hash_key: config.hash_key,
            ..Config::default()
        })
        .map_err(|_| wit::ConfigError::ZeroCapacity)?;
        DETECTOR.with_borrow_mut(|current| *current = detector);
        Ok(())
    }

    fn process_event(event: String) -> wit::EventOutcome {
        DETECTOR.with_borrow_mut(|detector| process(detector, &event))
    }

    fn process_batch(events: Vec<String>) -> Vec<wit::EventOutcome> {
        for event in &events {
            if event.contains("NEWTERMS_TRAP")
                || event.contains("NEWTERMS_LOOP")
                || event.contains("NEWTERMS_ALLOC")
            {
                misbehave(event);
            }
        }
        DETECTOR.with_borrow_mut(|detector| {
            events
                .iter()
                .map(|event| process(detector, event))
                .collect()
        })
    }

    fn process_ndjson(records: Vec<u8>) -> Vec<wit::LineOutcome> {
        let text = String::from_utf8_lossy(&records);
        for line in text.lines() {
            if let Some(malformed) = misbehave(line) {
                return vec![wit::LineOutcome {
                    line: 0,
                    outcome: Ok(malformed),
                }];
            }
        }
        DETECTOR.with_borrow_mut(|detector| {
            detector
                .process_ndjson(&records)
                .into_iter()
                .map(|outcome| wit::LineOutcome {
                    line: outcome.line,
                    outcome: outcome.outcome.map_err(|error| match error {
                        LineError::NotUtf8(offset) => wit::LineError::NotUtf8(offset),
                        LineError::Event(_) => wit::LineError::Event(wit::EventError::NotAnObject),
                    }),
                })
                .collect()
        })
    }

    fn memory_footprint() -> wit::Footprint {
        let footprint = DETECTOR.with_borrow(Detector::footprint);
        wit::Footprint {
            linear_memory_bytes: footprint.linear_memory_bytes,
            history_bytes: footprint.history_bytes,
            term_bytes: footprint.term_bytes,
            terms: footprint.terms,
        }
    }

    fn snapshot() -> Vec<u8> {
        DETECTOR.with_borrow(Detector::snapshot)
    }

    fn restore(snapshot: Vec<u8>) -> Result<(), wit::RestoreError> {
        DETECTOR.with_borrow_mut(|detector| {
            detector
                .restore(&snapshot)
                .map_err(|error| wit::RestoreError::Corrupt(format!("{error:?}")))
        })
    }

    fn snapshot_begin() -> u64 {
        DETECTOR.with_borrow_mut(Detector::snapshot_begin)
    }

    fn snapshot_read(max_bytes: u32) -> Vec<u8> {
        DETECTOR.with_borrow_mut(|detector| detector.snapshot_read(max_bytes as usize))
    }

    fn restore_begin(length: u64) {
        DETECTOR.with_borrow_mut(|detector| detector.restore_begin(length));
    }

    fn restore_write(piece: Vec<u8>) -> Result<(), wit::RestoreError> {
        DETECTOR.with_borrow_mut(|detector| {
            detector
                .restore_write(&piece)
                .map_err(|error| wit::RestoreError::Corrupt(format!("{error:?}")))
        })
    }

    fn restore_end() -> Result<(), wit::RestoreError> {
        DETECTOR.with_borrow_mut(|detector| {
            detector
                .restore_end()
                .map_err(|error| wit::RestoreError::Corrupt(format!("{error:?}")))
        })
    }

    fn metadata() -> RuleMetadata {
        DETECTOR.with_borrow(|detector| {
            let rule = detector.rule();
            let reference = |id: &str| wit::AttackReference {
                id: id.into(),
                name: String::new(),
                reference: String::new(),
            };
            RuleMetadata {
                name: format!("{} (hostile test build)", rule.name),
                rule_id: rule.rule_id.into(),
                rule_version: rule.version,
                severity: rule.severity.into(),
                risk_score: rule.risk_score,
                tactic: reference(rule.tactic.id),
                techniques: Vec::new(),
                tags: Vec::new(),
                query: rule.kql.into(),
                profile: wit::Profile::Default,
                window_ms: detector.window_ms(),
                term_fields: Vec::new(),
                capacity: detector.capacity(),
                learn: detector.config().learn,
                snapshot_format: 1,
            }
        })
    }

    fn stats() -> RuleStats {
        let stats = DETECTOR.with_borrow(Detector::stats);
        RuleStats {
            events: stats.events,
            matched: stats.matched,
            excepted: stats.excepted,
            alerts: stats.alerts,
            errors: stats.errors,
            terms: stats.terms,
            evictions: stats.evictions,
        }
    }
}

export!(Component);
