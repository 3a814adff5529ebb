//! The configuration file schema: the keys of `newterms scan --config` (TOML), of the Fluent Bit
//! filter's `newterms.toml` and of the Extism plugin's `configure` (JSON), defined once.
//!
//! Each reader parses its own text format into [`Settings`] (unknown keys are refused by the
//! parser), [`Settings::resolve`] reads the values whose syntax is the file's (durations, the
//! exceptions `exclude_arns` makes), and the rule checks the rest where it runs (the component's
//! `configure`, or the rule crate for the faces); [`Settings::key_of`] names the key a refusal of the
//! rule's is about.

use std::fmt;

use serde::Deserialize;

use crate::outcome::ConfigError;

/// The ECS field that `exclude_arns` filters on.
pub const ARN_FIELD: &str = "aws.cloudtrail.user_identity.arn";

/// A configuration file as written: every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `default` or `elastic`.
    pub profile: Option<String>,
    /// History window, e.g. `"7d"` (see [`parse_duration_ms`]).
    pub window: Option<String>,
    /// Most terms kept.
    pub capacity: Option<u32>,
    /// Build history without raising alerts.
    pub learn: Option<bool>,
    /// Principal ARNs (`*`, `?` wildcards) whose events are dropped.
    #[serde(default)]
    pub exclude_arns: Vec<String>,
    /// Exceptions on any ECS field.
    #[serde(default)]
    pub exceptions: Vec<ExceptionSettings>,
    /// Elastic detection-rules files or folders of them (`*.toml`), run in place of the built-in
    /// rule; relative paths are from the configuration file's folder.
    #[serde(default)]
    pub rules: Vec<String>,
}

/// One `[[exceptions]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionSettings {
    /// ECS field name.
    pub field: String,
    /// Values (`*` and `?` wildcards).
    pub values: Vec<String>,
}

/// A value the rule cannot take, with the key it was given under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The key, e.g. `window` or `exceptions[2].values`.
    pub key: String,
    /// What is wrong with its value.
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for SettingsError {}

/// A configuration with the file's syntax read: what a rule's configuration is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The profile's name as written (the rule knows its profiles); `None` for the rule's default.
    pub profile: Option<String>,
    /// History window in milliseconds; `None` keeps the profile's.
    pub window_ms: Option<u64>,
    /// Exceptions as (field, patterns), `[[exceptions]]` first, then the one `exclude_arns` makes.
    pub exceptions: Vec<(String, Vec<String>)>,
    /// Most terms kept; `None` keeps the rule's default.
    pub capacity: Option<u32>,
    /// Build history without raising alerts.
    pub learn: bool,
}

/// Which value a rule refused (see [`Settings::key_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The profile's name.
    Profile,
    /// The window.
    Window,
    /// The capacity.
    Capacity,
    /// The exception at this index of [`Resolved::exceptions`].
    Exception(usize),
    /// The partition (not a key of the file: given by an engine's host).
    Partition,
}

impl Refused {
    /// Which value a refusal of the rule's is about; `empty_exception` is the index of the first
    /// exception without a field or patterns, if any.
    pub fn of(error: &ConfigError, empty_exception: Option<usize>) -> Self {
        match error {
            ConfigError::ZeroCapacity => Refused::Capacity,
            ConfigError::InvalidWindow(_) => Refused::Window,
            ConfigError::InvalidException(_) => {
                Refused::Exception(empty_exception.unwrap_or(usize::MAX))
            }
            ConfigError::InvalidPartition { .. } => Refused::Partition,
        }
    }
}

impl Settings {
    /// Reads the values whose syntax is the file's; an error names the key.
    pub fn resolve(&self) -> Result<Resolved, SettingsError> {
        let window_ms = self
            .window
            .as_deref()
            .map(parse_duration_ms)
            .transpose()
            .map_err(|message| SettingsError {
                key: "window".into(),
                message,
            })?;
        let mut exceptions: Vec<(String, Vec<String>)> = self
            .exceptions
            .iter()
            .map(|exception| (exception.field.clone(), exception.values.clone()))
            .collect();
        if !self.exclude_arns.is_empty() {
            exceptions.push((ARN_FIELD.into(), self.exclude_arns.clone()));
        }
        Ok(Resolved {
            profile: self.profile.clone(),
            window_ms,
            exceptions,
            capacity: self.capacity,
            learn: self.learn.unwrap_or(false),
        })
    }

    /// The key of a value the rule refused, with the rule's words for why.
    pub fn key_of(&self, refused: Refused, message: String) -> SettingsError {
        let key = match refused {
            Refused::Profile => "profile".to_owned(),
            Refused::Window => "window".to_owned(),
            Refused::Capacity => "capacity".to_owned(),
            Refused::Exception(index) if index < self.exceptions.len() => {
                format!("exceptions[{}]", index + 1)
            }
            Refused::Exception(_) => "exclude_arns".to_owned(),
            Refused::Partition => "partition".to_owned(),
        };
        SettingsError { key, message }
    }
}

/// `14d`, `36h`, `90m`, `30s`, `500ms` to milliseconds; zero and overflow are refused.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 14d, 36h, 90m, 30s or 500ms"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use d, h, m, s or ms"
            ));
        }
    };
    match number.checked_mul(unit_ms) {
        Some(0) => Err(format!("a window of {text} is empty")),
        Some(ms) => Ok(ms),
        None => Err(format!("{text} is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Settings {
        match serde_json::from_str(json) {
            Ok(settings) => settings,
            Err(error) => panic!("{json}: {error}"),
        }
    }

    #[test]
    fn every_key_is_read() {
        let resolved = settings(
            r#"{"profile":"elastic","window":"36h","capacity":5,"learn":true,
                "exclude_arns":["arn:a*"],"exceptions":[{"field":"user.name","values":["ci-*"]}]}"#,
        )
        .resolve()
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(resolved.profile.as_deref(), Some("elastic"));
        assert_eq!(resolved.window_ms, Some(36 * 3_600_000));
        assert_eq!(resolved.capacity, Some(5));
        assert!(resolved.learn);
        assert_eq!(
            resolved.exceptions,
            vec![
                ("user.name".into(), vec!["ci-*".into()]),
                (ARN_FIELD.into(), vec!["arn:a*".into()]),
            ]
        );
        assert_eq!(settings("{}").resolve(), Ok(Resolved::default()));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let error = serde_json::from_str::<Settings>(r#"{"windw":"7d"}"#)
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("windw")));
        let error = serde_json::from_str::<Settings>(r#"{"exceptions":[{"field":"a","vals":[]}]}"#)
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("vals")));
    }

    #[test]
    fn refusals_name_their_key() {
        let bad = settings(r#"{"window":"7 days"}"#)
            .resolve()
            .err()
            .map(|e| e.key);
        assert_eq!(bad.as_deref(), Some("window"));
        let two = settings(
            r#"{"exclude_arns":["x"],"exceptions":[{"field":"a","values":["x"]},{"field":"b","values":[]}]}"#,
        );
        let key = |refused| two.key_of(refused, String::new()).key;
        assert_eq!(key(Refused::Exception(1)), "exceptions[2]");
        assert_eq!(key(Refused::Exception(2)), "exclude_arns");
        assert_eq!(key(Refused::Capacity), "capacity");
        assert_eq!(key(Refused::Profile), "profile");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("36h"), Ok(36 * 3_600_000));
        assert!(parse_duration_ms("7").is_err());
        assert!(parse_duration_ms("0d").is_err());
        assert!(parse_duration_ms("d").is_err());
        assert!(parse_duration_ms("7w").is_err());
        assert!(parse_duration_ms("99999999999999999d").is_err());
    }
}
