//! A configuration file ([`Settings`], the keys of `--config`) as the host's [`RuleConfig`], and a
//! refusal of the rule's named by the key it is about: one reading for the CLI and the Python package.

pub use newterms_contract::rule_files::read as read_rule_files;
use newterms_contract::settings::Refused;
pub use newterms_contract::settings::{
    ARN_FIELD, ExceptionSettings, Settings, SettingsError, parse_duration_ms,
};

use crate::{ConfigError, Exception, Profile, RuleConfig};

/// The configuration `settings` describe. The file's syntax is checked here (durations, profile
/// names); its values are the rule's to check, when an instance is configured with it
/// ([`refused_key`] then names the key).
pub fn rule_config(settings: &Settings) -> Result<RuleConfig, SettingsError> {
    let file = settings.resolve()?;
    let profile = match file.profile.as_deref() {
        None => Profile::Default,
        Some(name) => name
            .parse()
            .map_err(|message| settings.key_of(Refused::Profile, message))?,
    };
    Ok(RuleConfig {
        profile,
        window_ms: file.window_ms,
        exceptions: file
            .exceptions
            .into_iter()
            .map(|(field, patterns)| Exception { field, patterns })
            .collect(),
        capacity: file.capacity,
        learn: file.learn,
        partition: None,
        rules: Vec::new(),
    })
}

/// The key of `settings` that the rule's refusal of `config` (made from them) is about.
pub fn refused_key(settings: &Settings, config: &RuleConfig, error: &ConfigError) -> SettingsError {
    let empty = config
        .exceptions
        .iter()
        .position(|exception| exception.field.is_empty() || exception.patterns.is_empty());
    settings.key_of(Refused::of(error, empty), error.to_string())
}
