//! The host's own view of what crosses the component boundary. Generated binding types stay in
//! [`crate::bindings`]; everything public speaks these, most of them the contract's types
//! (`newterms-contract`), which the rule crate speaks too.

use std::fmt;

/// What the rule reports and how it is configured: the contract's types, which the rule crate speaks
/// too (their wording is the contract's).
pub use newterms_contract::outcome::{
    ConfigError, EventError, Exception, ExtractedLine, Extraction, Footprint, FreshTerms,
    LineError, LineOutcome, Observation, Partition, Profile, Route, Stats, Terms, bucket_of,
};

/// How the rule runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleConfig {
    /// Which reading of the rule.
    pub profile: Profile,
    /// History window in milliseconds; `None` keeps the profile's.
    pub window_ms: Option<u64>,
    /// Exceptions.
    pub exceptions: Vec<Exception>,
    /// History capacity in terms; `None` keeps the rule's default.
    pub capacity: Option<u32>,
    /// Build history without raising alerts.
    pub learn: bool,
    /// This instance's share of the terms, when an engine spreads a stream over several instances
    /// (see [`crate::RuleInstance::route`]); `None`: all of them.
    pub partition: Option<Partition>,
    /// Elastic rule files run in place of the built-in rule (empty: the built-in rule).
    pub rules: Vec<RuleFile>,
}

/// An Elastic detection-rules file handed to the component, which parses and compiles it.
pub use newterms_contract::rule_files::RuleFile;

/// A rule file as the component loaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSummary {
    /// `rule.rule_id`.
    pub rule_id: String,
    /// `rule.name`.
    pub name: String,
    /// The query as written.
    pub query: String,
    /// The new-terms fields.
    pub term_fields: Vec<String>,
    /// `history_window_start` as written.
    pub history_window_start: String,
    /// The window in milliseconds.
    pub window_ms: u64,
    /// Fields only enriched ECS documents carry.
    pub enrichment: Vec<String>,
}

/// Why the component refused a snapshot. Its state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// Not a newterms snapshot.
    BadMagic,
    /// A snapshot format this component does not read.
    UnsupportedVersion(u32),
    /// Shorter than its header says.
    Truncated,
    /// Damaged bytes.
    ChecksumMismatch,
    /// Undecodable content.
    Corrupt(String),
    /// Another rule's or another profile's terms.
    Incompatible(String),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use newterms_snapshot::RestoreError as Refusal;
        let error = match self {
            RestoreError::BadMagic => Refusal::BadMagic,
            RestoreError::UnsupportedVersion(version) => Refusal::UnsupportedVersion(*version),
            RestoreError::Truncated => Refusal::Truncated,
            RestoreError::ChecksumMismatch => Refusal::ChecksumMismatch,
            RestoreError::Corrupt(why) => {
                return write!(f, "{}: {why}", newterms_snapshot::CORRUPT);
            }
            RestoreError::Incompatible(why) => {
                return write!(f, "{}: {why}", newterms_snapshot::INCOMPATIBLE);
            }
        };
        error.fmt(f)
    }
}

/// A MITRE ATT&CK tactic or technique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackReference {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Reference URL.
    pub reference: String,
}

/// The rule's identity and the configuration in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Rule name.
    pub name: String,
    /// Rule id.
    pub rule_id: String,
    /// Rule version.
    pub rule_version: u32,
    /// Severity.
    pub severity: String,
    /// Risk score.
    pub risk_score: u32,
    /// MITRE tactic.
    pub tactic: AttackReference,
    /// MITRE techniques.
    pub techniques: Vec<AttackReference>,
    /// Tags.
    pub tags: Vec<String>,
    /// KQL query.
    pub query: String,
    /// Profile in force.
    pub profile: Profile,
    /// Window in force, milliseconds.
    pub window_ms: u64,
    /// Term fields in order.
    pub term_fields: Vec<String>,
    /// History capacity.
    pub capacity: u32,
    /// Learn mode.
    pub learn: bool,
    /// Snapshot format the component writes.
    pub snapshot_format: u32,
}
