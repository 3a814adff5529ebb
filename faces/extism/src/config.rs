//! `configure`'s JSON: the rule crate's configuration schema ([`Settings`], the keys of
//! `newterms scan --config`); this module only finds the key a refusal is about.

use newterms_guest::detector::Config;
use newterms_guest::settings::Settings;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Reads a configuration; an error names the key it is about.
pub fn from_json(json: &[u8]) -> Result<Config, String> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|error| format!("the configuration is not JSON: {error}"))?;
    let Value::Object(object) = value else {
        return Err("the configuration must be a JSON object".into());
    };
    let settings = match Settings::deserialize(Value::Object(object.clone())) {
        Ok(settings) => settings,
        // serde says what was wrong but not where: each key alone finds the one at fault.
        Err(error) => {
            let culprit = object.into_iter().find_map(|(key, value)| {
                Settings::deserialize(Value::Object(Map::from_iter([(key.clone(), value)])))
                    .err()
                    .map(|error| format!("`{key}`: {error}"))
            });
            return Err(culprit.unwrap_or_else(|| error.to_string()));
        }
    };
    newterms_guest::settings::config_of(&settings).map_err(|error| error.to_string())
}
