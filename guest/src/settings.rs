//! The rule's reading of a configuration file ([`newterms_contract::settings`], the keys of `--config`), for the
//! faces that configure the rule natively (the Fluent Bit filter, the Extism plugin): the rule checks
//! the values as its `configure` does, and a refusal names the key it is about.
//!
//! Behind the `settings` feature: the component takes a typed [`Config`] and has no use for it.

use newterms_contract::settings::Refused;
pub use newterms_contract::settings::{ARN_FIELD, Settings, SettingsError, parse_duration_ms};
use newterms_contract::wording;

use crate::definition::Profile;
use crate::detector::{Config, Detector, Exception};

/// The rule's configuration from `settings`, checked as the rule checks it (the hash key is left
/// zero: the face sets it). `rules` is not read here: it names files, which the face reads.
pub fn config_of(settings: &Settings) -> Result<Config, SettingsError> {
    // `rules` names files: the face that reads files hands their texts to `Engine::from_files`.
    let resolved = settings.resolve()?;
    let profile = match resolved.profile.as_deref() {
        None => Profile::Default,
        Some(name) => Profile::from_name(name)
            .ok_or_else(|| settings.key_of(Refused::Profile, wording::unknown_profile(name)))?,
    };
    let config = Config {
        profile,
        window_ms: resolved.window_ms,
        exceptions: resolved
            .exceptions
            .into_iter()
            .map(|(field, patterns)| Exception { field, patterns })
            .collect(),
        capacity: resolved.capacity,
        learn: resolved.learn,
        ..Config::default()
    };
    // The rule's own checks (a detector starts empty: nothing is allocated), mapped to the key.
    match Detector::new(config.clone()) {
        Ok(_) => Ok(config),
        Err(error) => {
            let empty = config
                .exceptions
                .iter()
                .position(|e| e.field.is_empty() || e.patterns.is_empty());
            Err(settings.key_of(Refused::of(&error, empty), error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Result<Config, SettingsError> {
        match serde_json::from_str(json) {
            Ok(settings) => config_of(&settings),
            Err(error) => panic!("{json}: {error}"),
        }
    }

    #[test]
    fn every_key_reaches_the_config() {
        let config = config(
            r#"{"profile":"elastic","window":"36h","capacity":5,"learn":true,
                "exclude_arns":["arn:a*"],"exceptions":[{"field":"user.name","values":["ci-*"]}]}"#,
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.profile, Profile::Elastic);
        assert_eq!(config.window_ms, Some(36 * 3_600_000));
        assert_eq!(config.capacity, Some(5));
        assert!(config.learn);
        assert_eq!(config.exceptions.len(), 2);
        assert_eq!(config.exceptions[1].field, ARN_FIELD);
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |json: &str| config(json).err().map(|e| e.key);
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
}
