//! The host's own view of what crosses the component boundary. Generated binding types stay in
//! [`crate::bindings`]; everything public speaks these. Errors say what the rule crate's say, in the
//! wording both take from `newterms-contract`.

use std::fmt;

use newterms_contract::wording;

/// Which reading of the rule to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    /// The seed's wording: 14-day window; `user.name` falls back to the identity's ARN.
    #[default]
    Default,
    /// Parity with Elastic's published rule: 7-day window, no fallback.
    Elastic,
}

impl Profile {
    /// The profile's name, as the CLI and configuration files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Elastic => "elastic",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "default" => Ok(Profile::Default),
            "elastic" => Ok(Profile::Elastic),
            other => Err(wording::unknown_profile(other)),
        }
    }
}

/// Events whose `field` has a value matching one of `patterns` (`*`, `?` wildcards) neither alert nor
/// count as history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// ECS field name, e.g. `aws.cloudtrail.user_identity.arn`.
    pub field: String,
    /// Case-sensitive patterns.
    pub patterns: Vec<String>,
}

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
}

/// Why the component refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A capacity of zero.
    ZeroCapacity,
    /// A window the rule does not take.
    InvalidWindow(u64),
    /// An exception without field or values.
    InvalidException(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroCapacity => wording::zero_capacity(f),
            ConfigError::InvalidWindow(window) => wording::invalid_window(f, *window),
            ConfigError::InvalidException(why) => wording::invalid_exception(f, why),
        }
    }
}

/// Why the component refused one event. The event raised nothing and changed no state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Not JSON (or nested too deep): the parser's message.
    MalformedJson(String),
    /// JSON but not an object.
    NotAnObject,
    /// Matches the query but has no time.
    MissingTime,
    /// Matches the query but its time does not parse.
    InvalidTime(String),
    /// Array-valued term fields with more combinations than the rule takes.
    TooManyTerms(u64),
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::MalformedJson(why) => wording::malformed_json(f, why),
            EventError::NotAnObject => wording::not_an_object(f),
            EventError::MissingTime => wording::missing_time(f),
            EventError::InvalidTime(value) => wording::invalid_time(f, value),
            EventError::TooManyTerms(count) => wording::too_many_terms(f, *count),
        }
    }
}

/// Memory a rule instance holds (see [`crate::RuleInstance::footprint`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// The component's whole linear memory, in bytes.
    pub linear_memory_bytes: u64,
    /// Bytes the first-seen history has allocated.
    pub history_bytes: u64,
    /// Bytes of the terms themselves.
    pub term_bytes: u64,
    /// Terms in history.
    pub terms: u64,
}

/// Why one line of an NDJSON buffer (see [`crate::RuleInstance::process_ndjson`]) raised no alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line is not UTF-8: offset of the first invalid byte in the line (after trimming). Not an
    /// event: it changes no counter of the rule.
    NotUtf8(u32),
    /// The rule refused the event.
    Event(EventError),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotUtf8(offset) => wording::not_utf8(f, *offset),
            LineError::Event(error) => error.fmt(f),
        }
    }
}

/// A line of an NDJSON buffer that raised alerts or was refused; lines that raised nothing are not
/// reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineOutcome {
    /// 0-based index of the line within the buffer (every `\n` ends a line, blank lines included).
    pub line: u32,
    /// The alerts it raised (JSON documents, never empty), or why it raised none.
    pub outcome: Result<Vec<String>, LineError>,
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

/// The component's counters.
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
