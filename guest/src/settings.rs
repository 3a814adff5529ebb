//! The configuration file schema: the keys of `newterms scan --config` (TOML), of the Fluent Bit
//! filter's `newterms.toml` and of the Extism plugin's `configure` (JSON), defined once.
//!
//! Behind the `settings` feature (it brings serde): the component takes a typed [`Config`] and has no
//! use for it. Each face parses its own text format into [`Settings`]; unknown keys are refused by the
//! parser, and [`Settings::to_config`] checks the values, naming the key at fault.

use std::fmt;

use serde::Deserialize;

use crate::definition::Profile;
use crate::detector::{Config, ConfigError, Detector, Exception};

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

impl Settings {
    /// The rule's configuration, checked as the rule checks it (the hash key is left zero: the host
    /// sets it).
    pub fn to_config(&self) -> Result<Config, SettingsError> {
        let profile = match self.profile.as_deref() {
            None => Profile::Default,
            Some(name) => parse_profile(name).map_err(|message| SettingsError {
                key: "profile".into(),
                message,
            })?,
        };
        let window_ms = self
            .window
            .as_deref()
            .map(parse_duration_ms)
            .transpose()
            .map_err(|message| SettingsError {
                key: "window".into(),
                message,
            })?;
        let mut exceptions: Vec<Exception> = self
            .exceptions
            .iter()
            .map(|exception| Exception {
                field: exception.field.clone(),
                patterns: exception.values.clone(),
            })
            .collect();
        if !self.exclude_arns.is_empty() {
            exceptions.push(Exception {
                field: ARN_FIELD.into(),
                patterns: self.exclude_arns.clone(),
            });
        }
        let config = Config {
            profile,
            window_ms,
            exceptions,
            capacity: self.capacity,
            learn: self.learn.unwrap_or(false),
            ..Config::default()
        };
        // The rule's own checks (a detector starts empty: nothing is allocated), mapped to the key.
        match Detector::new(config.clone()) {
            Ok(_) => Ok(config),
            Err(error) => Err(self.key_of(&error, &config)),
        }
    }

    fn key_of(&self, error: &ConfigError, config: &Config) -> SettingsError {
        let (key, message) = match error {
            ConfigError::ZeroCapacity => ("capacity".to_owned(), "must be at least 1".to_owned()),
            ConfigError::InvalidWindow(ms) => ("window".to_owned(), format!("{ms} ms is refused")),
            ConfigError::InvalidException(why) => {
                let index = config
                    .exceptions
                    .iter()
                    .position(|e| e.field.is_empty() || e.patterns.is_empty());
                let key = match index {
                    Some(i) if i < self.exceptions.len() => format!("exceptions[{}]", i + 1),
                    _ => "exclude_arns".to_owned(),
                };
                (key, why.clone())
            }
        };
        SettingsError { key, message }
    }
}

/// `default` or `elastic`.
pub fn parse_profile(name: &str) -> Result<Profile, String> {
    match name {
        "default" => Ok(Profile::Default),
        "elastic" => Ok(Profile::Elastic),
        other => Err(format!(
            "unknown profile {other:?}: expected default or elastic"
        )),
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
    fn every_key_reaches_the_config() {
        let config = settings(
            r#"{"profile":"elastic","window":"36h","capacity":5,"learn":true,
                "exclude_arns":["arn:a*"],"exceptions":[{"field":"user.name","values":["ci-*"]}]}"#,
        )
        .to_config();
        let config = config.unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.profile, Profile::Elastic);
        assert_eq!(config.window_ms, Some(36 * 3_600_000));
        assert_eq!(config.capacity, Some(5));
        assert!(config.learn);
        assert_eq!(
            config.exceptions,
            vec![
                Exception {
                    field: "user.name".into(),
                    patterns: vec!["ci-*".into()]
                },
                Exception {
                    field: ARN_FIELD.into(),
                    patterns: vec!["arn:a*".into()]
                },
            ]
        );
        assert_eq!(settings("{}").to_config(), Ok(Config::default()));
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
    fn bad_values_name_their_key() {
        let key = |json: &str| settings(json).to_config().err().map(|e| e.key);
        assert_eq!(key(r#"{"profile":"strict"}"#).as_deref(), Some("profile"));
        assert_eq!(key(r#"{"window":"7 days"}"#).as_deref(), Some("window"));
        assert_eq!(key(r#"{"window":"0d"}"#).as_deref(), Some("window"));
        assert_eq!(key(r#"{"capacity":0}"#).as_deref(), Some("capacity"));
        assert_eq!(
            key(r#"{"exceptions":[{"field":"a","values":["x"]},{"field":"b","values":[]}]}"#)
                .as_deref(),
            Some("exceptions[2]")
        );
        assert_eq!(
            key(r#"{"exceptions":[{"field":"","values":["x"]}]}"#).as_deref(),
            Some("exceptions[1]")
        );
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
