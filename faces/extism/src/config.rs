//! The configuration as JSON: the keys of `newterms scan --config` (profile, window, capacity,
//! learn, exclude_arns, exceptions).
//!
//! INTERIM: this schema moves into the rule crate (shared by the TOML and JSON faces); this module
//! then only names the offending key of a refused configuration.

use newterms_guest::definition::Profile;
use newterms_guest::detector::{Config, Exception};
use serde::Deserialize;
use serde_json::{Map, Value};

const ARN_FIELD: &str = "aws.cloudtrail.user_identity.arn";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    profile: Option<String>,
    window: Option<String>,
    capacity: Option<u32>,
    #[serde(default)]
    exclude_arns: Vec<String>,
    #[serde(default)]
    exceptions: Vec<ConfigException>,
    learn: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigException {
    field: String,
    values: Vec<String>,
}

/// Reads a configuration; an error names the key it is about.
pub fn from_json(json: &[u8]) -> Result<Config, String> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|error| format!("the configuration is not JSON: {error}"))?;
    let Value::Object(object) = value else {
        return Err("the configuration must be a JSON object".into());
    };
    let file = deserialize(object)?;
    let profile = match file.profile.as_deref() {
        None | Some("default") => Profile::Default,
        Some("elastic") => Profile::Elastic,
        Some(other) => {
            return Err(format!(
                "profile: {other:?} is not a profile (default or elastic)"
            ));
        }
    };
    let window_ms = file
        .window
        .as_deref()
        .map(parse_duration_ms)
        .transpose()
        .map_err(|why| format!("window: {why}"))?;
    let mut exceptions: Vec<Exception> = file
        .exceptions
        .into_iter()
        .map(|exception| Exception {
            field: exception.field,
            patterns: exception.values,
        })
        .collect();
    if !file.exclude_arns.is_empty() {
        exceptions.push(Exception {
            field: ARN_FIELD.into(),
            patterns: file.exclude_arns,
        });
    }
    Ok(Config {
        profile,
        window_ms,
        exceptions,
        capacity: file.capacity,
        learn: file.learn.unwrap_or(false),
        ..Config::default()
    })
}

/// serde_json's messages say what was wrong but not where: on a refusal, each key alone finds the
/// one at fault.
fn deserialize(object: Map<String, Value>) -> Result<ConfigFile, String> {
    match ConfigFile::deserialize(Value::Object(object.clone())) {
        Ok(file) => Ok(file),
        Err(error) => {
            for (key, value) in object {
                let alone = Map::from_iter([(key.clone(), value)]);
                if let Err(error) = ConfigFile::deserialize(Value::Object(alone)) {
                    return Err(format!("{key}: {error}"));
                }
            }
            Err(error.to_string())
        }
    }
}

/// `14d`, `36h`, `90m`, `30s`, `500ms` to milliseconds.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
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
