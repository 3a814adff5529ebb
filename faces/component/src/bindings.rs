//! Exports the detector as the `newterms:rule/detector` interface. Generated types stop here: the
//! conversions below are the only place that knows both sides.

use std::cell::RefCell;

use newterms_guest::definition::{
    AttackReference as DomainAttackReference, Profile as DomainProfile,
};
use newterms_guest::detector::{
    Config as DomainConfig, ConfigError as DomainConfigError, Detector,
    EventError as DomainEventError, Exception as DomainException, LineError as DomainLineError,
    LineOutcome as DomainLineOutcome, Partition as DomainPartition,
};
use newterms_guest::snapshot::{FORMAT_VERSION, RestoreError as DomainRestoreError};

wit_bindgen::generate!({
    world: "rule",
    path: "../../wit",
    // Test components (tests/hostile-guest) wrap [`Component`] and export themselves with these
    // bindings' `export!`.
    pub_export_macro: true,
    export_macro_name: "export_rule",
});

use exports::newterms::rule::detector::{
    AttackReference, Config, ConfigError, EventError, EventOutcome, Footprint, Guest, LineError,
    LineOutcome, Partition, Profile, RestoreError, Routing, RuleMetadata, RuleStats,
};

thread_local! {
    // The component is single-threaded and never re-entered: one detector per instance.
    static DETECTOR: RefCell<Detector> = RefCell::new(Detector::default());
}

/// The rule's exports.
pub struct Component;

impl Guest for Component {
    fn configure(config: Config) -> Result<(), ConfigError> {
        let detector = Detector::new(config.into()).map_err(ConfigError::from)?;
        DETECTOR.with_borrow_mut(|current| *current = detector);
        Ok(())
    }

    fn process_event(event: String) -> EventOutcome {
        DETECTOR.with_borrow_mut(|detector| detector.process(&event).map_err(EventError::from))
    }

    fn process_batch(events: Vec<String>) -> Vec<EventOutcome> {
        DETECTOR.with_borrow_mut(|detector| {
            events
                .iter()
                .map(|event| detector.process(event).map_err(EventError::from))
                .collect()
        })
    }

    fn route(events: Vec<String>, count: u32) -> Vec<Routing> {
        DETECTOR.with_borrow(|detector| {
            events
                .iter()
                .map(|event| {
                    let route = detector.route(event, count);
                    Routing {
                        buckets: route.buckets,
                        time: route.time,
                    }
                })
                .collect()
        })
    }

    fn process_ndjson(records: Vec<u8>) -> Vec<LineOutcome> {
        DETECTOR.with_borrow_mut(|detector| {
            detector
                .process_ndjson(&records)
                .into_iter()
                .map(LineOutcome::from)
                .collect()
        })
    }

    fn snapshot() -> Vec<u8> {
        DETECTOR.with_borrow(Detector::snapshot)
    }

    fn memory_footprint() -> Footprint {
        let footprint = DETECTOR.with_borrow(Detector::footprint);
        Footprint {
            linear_memory_bytes: footprint.linear_memory_bytes,
            history_bytes: footprint.history_bytes,
            term_bytes: footprint.term_bytes,
            terms: footprint.terms,
        }
    }

    fn restore(snapshot: Vec<u8>) -> Result<(), RestoreError> {
        DETECTOR.with_borrow_mut(|detector| detector.restore(&snapshot).map_err(RestoreError::from))
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

    fn restore_write(piece: Vec<u8>) -> Result<(), RestoreError> {
        DETECTOR
            .with_borrow_mut(|detector| detector.restore_write(&piece).map_err(RestoreError::from))
    }

    fn restore_end() -> Result<(), RestoreError> {
        DETECTOR.with_borrow_mut(|detector| detector.restore_end().map_err(RestoreError::from))
    }

    fn metadata() -> RuleMetadata {
        DETECTOR.with_borrow(|detector| {
            let rule = detector.rule();
            RuleMetadata {
                name: rule.name.into(),
                rule_id: rule.rule_id.into(),
                rule_version: rule.version,
                severity: rule.severity.into(),
                risk_score: rule.risk_score,
                tactic: rule.tactic.into(),
                techniques: rule.techniques.iter().copied().map(Into::into).collect(),
                tags: rule.tags.iter().map(|tag| (*tag).into()).collect(),
                query: rule.kql.into(),
                profile: detector.config().profile.into(),
                window_ms: detector.window_ms(),
                term_fields: detector
                    .profile()
                    .terms
                    .iter()
                    .map(|term| term.name.into())
                    .collect(),
                capacity: detector.capacity(),
                learn: detector.config().learn,
                snapshot_format: FORMAT_VERSION,
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

impl From<Config> for DomainConfig {
    fn from(config: Config) -> Self {
        Self {
            profile: match config.profile {
                Profile::Default => DomainProfile::Default,
                Profile::Elastic => DomainProfile::Elastic,
            },
            window_ms: config.window_ms,
            exceptions: config
                .exceptions
                .into_iter()
                .map(|exception| DomainException {
                    field: exception.field,
                    patterns: exception.patterns,
                })
                .collect(),
            capacity: config.capacity,
            learn: config.learn,
            hash_key: config.hash_key,
            partition: config.partition.map(|partition| DomainPartition {
                index: partition.index,
                count: partition.count,
            }),
        }
    }
}

impl From<DomainProfile> for Profile {
    fn from(profile: DomainProfile) -> Self {
        match profile {
            DomainProfile::Default => Profile::Default,
            DomainProfile::Elastic => Profile::Elastic,
        }
    }
}

impl From<DomainAttackReference> for AttackReference {
    fn from(reference: DomainAttackReference) -> Self {
        Self {
            id: reference.id.into(),
            name: reference.name.into(),
            reference: reference.reference.into(),
        }
    }
}

impl From<DomainConfigError> for ConfigError {
    fn from(error: DomainConfigError) -> Self {
        match error {
            DomainConfigError::ZeroCapacity => ConfigError::ZeroCapacity,
            DomainConfigError::InvalidWindow(window) => ConfigError::InvalidWindow(window),
            DomainConfigError::InvalidException(why) => ConfigError::InvalidException(why),
            DomainConfigError::InvalidPartition { index, count } => {
                ConfigError::InvalidPartition(Partition { index, count })
            }
        }
    }
}

impl From<DomainEventError> for EventError {
    fn from(error: DomainEventError) -> Self {
        match error {
            DomainEventError::MalformedJson(why) => EventError::MalformedJson(why),
            DomainEventError::NotAnObject => EventError::NotAnObject,
            DomainEventError::MissingTime => EventError::MissingTime,
            DomainEventError::InvalidTime(value) => EventError::InvalidTime(value),
            DomainEventError::TooManyTerms(count) => EventError::TooManyTerms(count),
        }
    }
}

impl From<DomainLineOutcome> for LineOutcome {
    fn from(outcome: DomainLineOutcome) -> Self {
        Self {
            line: outcome.line,
            outcome: outcome.outcome.map_err(|error| match error {
                DomainLineError::NotUtf8(offset) => LineError::NotUtf8(offset),
                DomainLineError::Event(error) => LineError::Event(error.into()),
            }),
        }
    }
}

impl From<DomainRestoreError> for RestoreError {
    fn from(error: DomainRestoreError) -> Self {
        match error {
            DomainRestoreError::BadMagic => RestoreError::BadMagic,
            DomainRestoreError::UnsupportedVersion(version) => {
                RestoreError::UnsupportedVersion(version)
            }
            DomainRestoreError::Truncated => RestoreError::Truncated,
            DomainRestoreError::ChecksumMismatch => RestoreError::ChecksumMismatch,
            DomainRestoreError::Corrupt(why) => RestoreError::Corrupt(why.to_string()),
            DomainRestoreError::Incompatible(why) => RestoreError::Incompatible(why.to_string()),
        }
    }
}

// A crate that wraps the component (a test guest) exports its own type instead.
#[cfg(feature = "export")]
export_rule!(Component with_types_in self);
