//! `configure`'s JSON: the rule crate's configuration schema ([`Settings`], the keys of
//! `newterms scan --config`); this module only finds the key a refusal is about.

use newterms_guest::detector::Config;
use newterms_guest::rule_pack::RuleFile;
use newterms_guest::settings::Settings;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Reads a configuration; an error names the key it is about.
pub fn from_json(json: &[u8]) -> Result<Config, String> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|error| format!("the configuration is not JSON: {error}"))?;
    from_value(value)
}

/// Reads `configure_rules`' input: `{"config": {...}, "rules": [{"name": ..., "text": ...}]}`.
pub fn rules_from_json(json: &[u8]) -> Result<(Config, Vec<RuleFile>), String> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|error| format!("the input of configure_rules is not JSON: {error}"))?;
    let Value::Object(mut object) = value else {
        return Err("the input of configure_rules must be a JSON object".into());
    };
    if let Some(key) = object
        .keys()
        .find(|key| !["config", "rules"].contains(&key.as_str()))
    {
        return Err(format!(
            "configure_rules takes `config` and `rules`, not `{key}`"
        ));
    }
    let config = from_value(object.remove("config").unwrap_or(Value::Object(Map::new())))?;
    let Some(Value::Array(items)) = object.remove("rules") else {
        return Err(
            "configure_rules needs `rules`: a list of {\"name\": ..., \"text\": ...}".into(),
        );
    };
    let files = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
            match (text("name"), text("text")) {
                (Some(name), Some(text)) => Ok(RuleFile { name, text }),
                _ => Err(format!(
                    "`rules[{index}]` needs a string `name` and a string `text`"
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((config, files))
}

fn from_value(value: Value) -> Result<Config, String> {
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
    if !settings.rules.is_empty() {
        return Err("`rules`: the Extism plugin reads no files; hand the rule files' texts to `configure_rules`".into());
    }
    newterms_guest::settings::config_of(&settings).map_err(|error| error.to_string())
}
