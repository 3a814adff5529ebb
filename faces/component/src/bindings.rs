//! Exports the detector as the `newterms:rule/detector` interface. Generated types stop here: the
//! conversions below are the only place that knows both sides.

use std::cell::RefCell;

use newterms_guest::definition::{
    AttackReference as DomainAttackReference, Profile as DomainProfile,
};
use newterms_guest::detector::{
    Config as DomainConfig, ConfigError as DomainConfigError, Detector,
    EventError as DomainEventError, Exception as DomainException,
    ExtractedLine as DomainExtractedLine, Extraction as DomainExtraction,
    FreshTerms as DomainFreshTerms, LineError as DomainLineError, LineOutcome as DomainLineOutcome,
    Observation as DomainObservation, Partition as DomainPartition, Terms as DomainTerms,
};
use newterms_guest::engine::Engine;
use newterms_guest::rule_pack::{self, RuleFile as DomainRuleFile, RulePackDetector};
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
    AttackReference, Config, ConfigError, EventError, EventOutcome, ExtractedLine, Extraction,
    Footprint, FreshTerms, Guest, LineError, LineOutcome, Observation, Partition, Profile,
    RestoreError, Routing, RuleFile, RuleMetadata, RuleStats, RuleSummary,
};

thread_local! {
    // The component is single-threaded and never re-entered: one engine per instance, the
    // built-in rule or (after `configure-rules`) rules from rule files.
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::default());
}

/// `pack(detector)` under `configure-rules`, else `builtin(detector)`.
fn with_engine<T>(
    pack: impl FnOnce(&mut RulePackDetector) -> T,
    builtin: impl FnOnce(&mut Detector) -> T,
) -> T {
    ENGINE.with_borrow_mut(|engine| match engine {
        Engine::Pack(detector) => pack(detector),
        Engine::BuiltIn(detector) => builtin(detector),
    })
}

fn domain_files(rules: Vec<RuleFile>) -> Vec<DomainRuleFile> {
    rules
        .into_iter()
        .map(|file| DomainRuleFile {
            name: file.name,
            text: file.text,
        })
        .collect()
}

/// The rule's exports.
pub struct Component;

impl Guest for Component {
    fn configure(config: Config) -> Result<(), ConfigError> {
        let engine = Engine::built_in(config.into()).map_err(ConfigError::from)?;
        ENGINE.with_borrow_mut(|current| *current = engine);
        Ok(())
    }

    fn check_rules(rules: Vec<RuleFile>) -> Vec<Result<RuleSummary, String>> {
        rule_pack::load_rule_files(&domain_files(rules))
            .into_iter()
            .map(|loaded| {
                loaded.map(|rule| RuleSummary {
                    enrichment: rule_pack::enrichment_fields(&rule),
                    rule_id: rule.rule_id,
                    name: rule.name,
                    query: rule.query_text,
                    term_fields: rule.new_terms_fields,
                    history_window_start: rule.history_window_start,
                    window_ms: u64::try_from(rule.window_ms).unwrap_or(0),
                })
            })
            .collect()
    }

    fn configure_rules(config: Config, rules: Vec<RuleFile>) -> Result<(), String> {
        let engine = Engine::from_files(&domain_files(rules), config.into())?;
        ENGINE.with_borrow_mut(|current| *current = engine);
        Ok(())
    }

    fn restore_notices() -> Vec<String> {
        ENGINE.with_borrow(|engine| engine.notices().iter().map(ToString::to_string).collect())
    }

    fn process_event(event: String) -> EventOutcome {
        ENGINE
            .with_borrow_mut(|engine| engine.process(&event))
            .map_err(EventError::from)
    }

    fn process_batch(events: Vec<String>) -> Vec<EventOutcome> {
        ENGINE.with_borrow_mut(|engine| {
            events
                .iter()
                .map(|event| engine.process(event).map_err(EventError::from))
                .collect()
        })
    }

    fn route(events: Vec<String>, count: u32) -> Vec<Routing> {
        with_engine(
            // Rules from rule files are not partitioned: every event goes to one instance.
            |_| {
                events
                    .iter()
                    .map(|_| Routing {
                        buckets: Vec::new(),
                        time: None,
                    })
                    .collect()
            },
            |detector| {
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
            },
        )
    }

    fn process_ndjson(records: Vec<u8>) -> Vec<LineOutcome> {
        ENGINE
            .with_borrow_mut(|engine| engine.process_ndjson(&records))
            .into_iter()
            .map(LineOutcome::from)
            .collect()
    }

    fn snapshot() -> Vec<u8> {
        ENGINE.with_borrow(Engine::snapshot)
    }

    fn memory_footprint() -> Footprint {
        let footprint = ENGINE.with_borrow(Engine::footprint);
        Footprint {
            linear_memory_bytes: footprint.linear_memory_bytes,
            history_bytes: footprint.history_bytes,
            term_bytes: footprint.term_bytes,
            terms: footprint.terms,
        }
    }

    fn restore(snapshot: Vec<u8>) -> Result<(), RestoreError> {
        ENGINE
            .with_borrow_mut(|engine| engine.restore(&snapshot))
            .map(drop)
            .map_err(RestoreError::from)
    }

    fn snapshot_begin() -> u64 {
        ENGINE.with_borrow_mut(Engine::snapshot_begin)
    }

    fn snapshot_read(max_bytes: u32) -> Vec<u8> {
        ENGINE.with_borrow_mut(|engine| engine.snapshot_read(max_bytes as usize))
    }

    fn restore_begin(length: u64) {
        ENGINE.with_borrow_mut(|engine| engine.restore_begin(length));
    }

    fn restore_write(piece: Vec<u8>) -> Result<(), RestoreError> {
        ENGINE
            .with_borrow_mut(|engine| engine.restore_write(&piece))
            .map_err(RestoreError::from)
    }

    fn restore_end() -> Result<(), RestoreError> {
        ENGINE
            .with_borrow_mut(Engine::restore_end)
            .map_err(RestoreError::from)
    }

    fn metadata() -> RuleMetadata {
        with_engine(
            |pack| pack_metadata(pack),
            |detector| {
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
            },
        )
    }

    fn stats() -> RuleStats {
        let stats = ENGINE.with_borrow(Engine::stats);
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

    fn extract(records: Vec<u8>) -> Result<Extraction, String> {
        Ok(ENGINE
            .with_borrow_mut(|engine| engine.extract_ndjson(&records))
            .into())
    }

    fn decide(extraction: Extraction) -> Result<Vec<FreshTerms>, String> {
        let extraction = DomainExtraction::from(extraction);
        Ok(ENGINE
            .with_borrow_mut(|engine| engine.decide(&extraction))
            .into_iter()
            .map(FreshTerms::from)
            .collect())
    }

    fn alerts_for(event: String, terms: Vec<Vec<u8>>) -> EventOutcome {
        ENGINE
            .with_borrow(|engine| engine.alerts_for(&event, &terms))
            .map_err(EventError::from)
    }
}

/// The metadata of rules from rule files: the pack as a whole (each alert carries its own rule's).
fn pack_metadata(pack: &RulePackDetector) -> RuleMetadata {
    let rules = pack.pack().rules();
    let config = pack.config();
    RuleMetadata {
        name: format!("{} rules from rule files", rules.len()),
        rule_id: rule_pack::PACK_RULE_ID.into(),
        rule_version: 1,
        severity: String::new(),
        risk_score: 0,
        tactic: AttackReference {
            id: String::new(),
            name: String::new(),
            reference: String::new(),
        },
        techniques: Vec::new(),
        tags: Vec::new(),
        query: rules
            .iter()
            .map(|rule| format!("{}: {}", rule.rule_id, rule.query_text.trim()))
            .collect::<Vec<_>>()
            .join("\n"),
        profile: config.profile.into(),
        window_ms: 0,
        term_fields: Vec::new(),
        capacity: config.capacity(),
        learn: config.learn,
        snapshot_format: FORMAT_VERSION,
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
            outcome: outcome.outcome.map_err(LineError::from),
        }
    }
}

impl From<DomainExtraction> for Extraction {
    fn from(extraction: DomainExtraction) -> Self {
        let (term_ends, term_bytes) = extraction.terms.into_parts();
        Self {
            events: extraction.events,
            matched: extraction.matched,
            excepted: extraction.excepted,
            lines: extraction
                .lines
                .into_iter()
                .map(|line| ExtractedLine {
                    line: line.line,
                    outcome: match line.outcome {
                        Ok(observation) => Ok(Observation {
                            time: observation.time,
                            terms: observation.terms,
                        }),
                        Err(error) => Err(error.into()),
                    },
                })
                .collect(),
            term_ends,
            term_bytes,
        }
    }
}

/// An extraction from the host. Terms whose ends are out of order or past their bytes, which no
/// extraction makes, are dropped: `decide` then observes none of them.
impl From<Extraction> for DomainExtraction {
    fn from(extraction: Extraction) -> Self {
        Self {
            events: extraction.events,
            matched: extraction.matched,
            excepted: extraction.excepted,
            lines: extraction
                .lines
                .into_iter()
                .map(|line| DomainExtractedLine {
                    line: line.line,
                    outcome: match line.outcome {
                        Ok(observation) => Ok(DomainObservation {
                            time: observation.time,
                            terms: observation.terms,
                        }),
                        Err(error) => Err(error.into()),
                    },
                })
                .collect(),
            terms: DomainTerms::from_parts(extraction.term_ends, extraction.term_bytes)
                .unwrap_or_default(),
        }
    }
}

impl From<DomainFreshTerms> for FreshTerms {
    fn from(fresh: DomainFreshTerms) -> Self {
        Self {
            line: fresh.line,
            terms: fresh.terms,
        }
    }
}

impl From<DomainLineError> for LineError {
    fn from(error: DomainLineError) -> Self {
        match error {
            DomainLineError::NotUtf8(offset) => LineError::NotUtf8(offset),
            DomainLineError::Event(error) => LineError::Event(error.into()),
        }
    }
}

impl From<LineError> for DomainLineError {
    fn from(error: LineError) -> Self {
        match error {
            LineError::NotUtf8(offset) => DomainLineError::NotUtf8(offset),
            LineError::Event(error) => DomainLineError::Event(error.into()),
        }
    }
}

impl From<EventError> for DomainEventError {
    fn from(error: EventError) -> Self {
        match error {
            EventError::MalformedJson(why) => DomainEventError::MalformedJson(why),
            EventError::NotAnObject => DomainEventError::NotAnObject,
            EventError::MissingTime => DomainEventError::MissingTime,
            EventError::InvalidTime(value) => DomainEventError::InvalidTime(value),
            EventError::TooManyTerms(count) => DomainEventError::TooManyTerms(count),
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
