//! The generated bindings of the `newterms:rule` world, and the conversions to the host's types.
//! Nothing outside this module names a generated type.

use crate::types;

wasmtime::component::bindgen!({
    world: "rule",
    path: "../wit",
});

pub use exports::newterms::rule::detector as wit;

impl From<&types::RuleConfig> for wit::Config {
    fn from(config: &types::RuleConfig) -> Self {
        wit::Config {
            profile: config.profile.into(),
            window_ms: config.window_ms,
            exceptions: config
                .exceptions
                .iter()
                .map(|exception| wit::Exception {
                    field: exception.field.clone(),
                    patterns: exception.patterns.clone(),
                })
                .collect(),
            capacity: config.capacity,
            learn: config.learn,
            hash_key: random_hash_key(),
            partition: config.partition.map(|partition| wit::Partition {
                index: partition.index,
                count: partition.count,
            }),
        }
    }
}

/// Fresh random bits from the operating system (through std's hasher seeding), so that an attacker
/// who writes user names into logs cannot aim them at one hash bucket.
fn random_hash_key() -> (u64, u64) {
    use std::hash::{BuildHasher, Hasher};
    let draw = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.finish()
    };
    (draw(1), draw(2))
}

impl From<types::Profile> for wit::Profile {
    fn from(profile: types::Profile) -> Self {
        match profile {
            types::Profile::Default => wit::Profile::Default,
            types::Profile::Elastic => wit::Profile::Elastic,
        }
    }
}

impl From<wit::Profile> for types::Profile {
    fn from(profile: wit::Profile) -> Self {
        match profile {
            wit::Profile::Default => types::Profile::Default,
            wit::Profile::Elastic => types::Profile::Elastic,
        }
    }
}

impl From<wit::ConfigError> for types::ConfigError {
    fn from(error: wit::ConfigError) -> Self {
        match error {
            wit::ConfigError::ZeroCapacity => types::ConfigError::ZeroCapacity,
            wit::ConfigError::InvalidWindow(window) => types::ConfigError::InvalidWindow(window),
            wit::ConfigError::InvalidException(why) => types::ConfigError::InvalidException(why),
            wit::ConfigError::InvalidPartition(partition) => types::ConfigError::InvalidPartition {
                index: partition.index,
                count: partition.count,
            },
        }
    }
}

impl From<wit::EventError> for types::EventError {
    fn from(error: wit::EventError) -> Self {
        match error {
            wit::EventError::MalformedJson(why) => types::EventError::MalformedJson(why),
            wit::EventError::NotAnObject => types::EventError::NotAnObject,
            wit::EventError::MissingTime => types::EventError::MissingTime,
            wit::EventError::InvalidTime(value) => types::EventError::InvalidTime(value),
            wit::EventError::TooManyTerms(count) => types::EventError::TooManyTerms(count),
        }
    }
}

impl From<wit::Footprint> for types::Footprint {
    fn from(footprint: wit::Footprint) -> Self {
        types::Footprint {
            linear_memory_bytes: footprint.linear_memory_bytes,
            history_bytes: footprint.history_bytes,
            term_bytes: footprint.term_bytes,
            terms: footprint.terms,
        }
    }
}

impl From<wit::LineError> for types::LineError {
    fn from(error: wit::LineError) -> Self {
        match error {
            wit::LineError::NotUtf8(offset) => types::LineError::NotUtf8(offset),
            wit::LineError::Event(error) => types::LineError::Event(error.into()),
        }
    }
}

impl From<&types::LineError> for wit::LineError {
    fn from(error: &types::LineError) -> Self {
        match error {
            types::LineError::NotUtf8(offset) => wit::LineError::NotUtf8(*offset),
            types::LineError::Event(error) => wit::LineError::Event(error.into()),
        }
    }
}

impl From<&types::EventError> for wit::EventError {
    fn from(error: &types::EventError) -> Self {
        match error {
            types::EventError::MalformedJson(why) => wit::EventError::MalformedJson(why.clone()),
            types::EventError::NotAnObject => wit::EventError::NotAnObject,
            types::EventError::MissingTime => wit::EventError::MissingTime,
            types::EventError::InvalidTime(value) => wit::EventError::InvalidTime(value.clone()),
            types::EventError::TooManyTerms(count) => wit::EventError::TooManyTerms(*count),
        }
    }
}

impl From<wit::LineOutcome> for types::LineOutcome {
    fn from(outcome: wit::LineOutcome) -> Self {
        types::LineOutcome {
            line: outcome.line,
            outcome: outcome.outcome.map_err(types::LineError::from),
        }
    }
}

/// An extraction from the component; `None` when its terms' ends are out of order or past their
/// bytes.
impl TryFrom<wit::Extraction> for types::Extraction {
    type Error = ();

    fn try_from(extraction: wit::Extraction) -> Result<Self, ()> {
        let terms =
            types::Terms::from_parts(extraction.term_ends, extraction.term_bytes).ok_or(())?;
        Ok(types::Extraction {
            events: extraction.events,
            matched: extraction.matched,
            excepted: extraction.excepted,
            lines: extraction
                .lines
                .into_iter()
                .map(|line| types::ExtractedLine {
                    line: line.line,
                    outcome: match line.outcome {
                        Ok(observation) => Ok(types::Observation {
                            time: observation.time,
                            terms: observation.terms,
                        }),
                        Err(error) => Err(error.into()),
                    },
                })
                .collect(),
            terms,
        })
    }
}

impl wit::Extraction {
    /// The call's argument for `extraction`, its terms moved rather than copied;
    /// [`wit::Extraction::give_back`] returns them.
    pub(crate) fn taking_terms(extraction: &mut types::Extraction) -> Self {
        let (term_ends, term_bytes) = std::mem::take(&mut extraction.terms).into_parts();
        wit::Extraction {
            events: extraction.events,
            matched: extraction.matched,
            excepted: extraction.excepted,
            lines: extraction
                .lines
                .iter()
                .map(|line| wit::ExtractedLine {
                    line: line.line,
                    outcome: match &line.outcome {
                        Ok(observation) => Ok(wit::Observation {
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

    /// Puts the terms [`wit::Extraction::taking_terms`] moved back into `extraction`.
    pub(crate) fn give_back(self, extraction: &mut types::Extraction) {
        // They came from `extraction`'s terms, whose parts are in order.
        extraction.terms =
            types::Terms::from_parts(self.term_ends, self.term_bytes).unwrap_or_default();
    }
}

impl From<wit::FreshTerms> for types::FreshTerms {
    fn from(fresh: wit::FreshTerms) -> Self {
        types::FreshTerms {
            line: fresh.line,
            terms: fresh.terms,
        }
    }
}

impl From<wit::RestoreError> for types::RestoreError {
    fn from(error: wit::RestoreError) -> Self {
        match error {
            wit::RestoreError::BadMagic => types::RestoreError::BadMagic,
            wit::RestoreError::UnsupportedVersion(version) => {
                types::RestoreError::UnsupportedVersion(version)
            }
            wit::RestoreError::Truncated => types::RestoreError::Truncated,
            wit::RestoreError::ChecksumMismatch => types::RestoreError::ChecksumMismatch,
            wit::RestoreError::Corrupt(why) => types::RestoreError::Corrupt(why),
            wit::RestoreError::Incompatible(why) => types::RestoreError::Incompatible(why),
        }
    }
}

impl From<wit::AttackReference> for types::AttackReference {
    fn from(reference: wit::AttackReference) -> Self {
        types::AttackReference {
            id: reference.id,
            name: reference.name,
            reference: reference.reference,
        }
    }
}

impl From<wit::RuleMetadata> for types::Metadata {
    fn from(metadata: wit::RuleMetadata) -> Self {
        types::Metadata {
            name: metadata.name,
            rule_id: metadata.rule_id,
            rule_version: metadata.rule_version,
            severity: metadata.severity,
            risk_score: metadata.risk_score,
            tactic: metadata.tactic.into(),
            techniques: metadata.techniques.into_iter().map(Into::into).collect(),
            tags: metadata.tags,
            query: metadata.query,
            profile: metadata.profile.into(),
            window_ms: metadata.window_ms,
            term_fields: metadata.term_fields,
            capacity: metadata.capacity,
            learn: metadata.learn,
            snapshot_format: metadata.snapshot_format,
        }
    }
}

impl From<wit::RuleStats> for types::Stats {
    fn from(stats: wit::RuleStats) -> Self {
        types::Stats {
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

impl From<wit::Routing> for types::Route {
    fn from(route: wit::Routing) -> Self {
        types::Route {
            buckets: route.buckets,
            time: route.time,
        }
    }
}

impl From<&types::RuleFile> for wit::RuleFile {
    fn from(file: &types::RuleFile) -> Self {
        Self {
            name: file.name.clone(),
            text: file.text.clone(),
        }
    }
}

impl From<wit::RuleSummary> for types::RuleSummary {
    fn from(summary: wit::RuleSummary) -> Self {
        Self {
            rule_id: summary.rule_id,
            name: summary.name,
            query: summary.query,
            term_fields: summary.term_fields,
            history_window_start: summary.history_window_start,
            window_ms: summary.window_ms,
            enrichment: summary.enrichment,
        }
    }
}
