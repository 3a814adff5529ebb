//! The full path: parse, map raw CloudTrail to ECS, query, time, exceptions, terms, history, alerts.

use serde_json::Value;

use super::{Detector, EventError, terms};
use crate::alert::{AlertRule, AlertSource};
use crate::cloudtrail;
use crate::definition;
use crate::fields;
use crate::history::TermKey;
use crate::time::{self, EpochMillis};
use crate::wildcard;

/// Event times outside years 0001 to 9999 are refused, as Elasticsearch's `date` type refuses them.
pub(super) const TIME_RANGE: std::ops::RangeInclusive<EpochMillis> =
    -62_135_596_800_000..=253_402_300_799_999;

impl Detector {
    pub(super) fn evaluate(&mut self, text: &str) -> Result<Vec<String>, EventError> {
        let document: Value = serde_json::from_str(text)
            .map_err(|error| EventError::MalformedJson(error.to_string()))?;
        let Value::Object(object) = &document else {
            return Err(EventError::NotAnObject);
        };
        let raw = cloudtrail::is_raw_record(object);
        let mapped;
        let ecs = if raw {
            mapped = cloudtrail::to_ecs(object);
            &mapped
        } else {
            &document
        };

        if definition::query_holds(self.rule.query, &fields::Document(ecs)) != Some(true) {
            return Ok(Vec::new());
        }
        self.stats.matched += 1;
        let time = event_time(ecs)?;
        if self.is_excepted(ecs) {
            self.stats.excepted += 1;
            return Ok(Vec::new());
        }
        let Some(terms) = terms::combinations(self.profile.terms, ecs)? else {
            return Ok(Vec::new());
        };

        let source = AlertSource {
            ecs,
            original: raw.then_some(text),
            text,
            time,
        };
        let raiser = AlertRule {
            rule: self.rule,
            profile: self.profile,
            window_ms: self.window_ms,
        };
        let mut alerts = Vec::new();
        let mut key = TermKey::default();
        for values in terms {
            let values: Vec<&str> = values.iter().map(|value| value.as_ref()).collect();
            key.encode(values.iter().copied());
            let new = self.history.observe(key.as_bytes(), time, self.window_ms);
            if new && !self.config.learn {
                alerts.push(raiser.alert(&source, &values, key.as_bytes()));
            }
        }
        Ok(alerts)
    }

    fn is_excepted(&self, ecs: &Value) -> bool {
        self.config.exceptions.iter().any(|exception| {
            fields::values(ecs, &exception.field).iter().any(|value| {
                exception
                    .patterns
                    .iter()
                    .any(|pattern| wildcard::matches(pattern, value))
            })
        })
    }
}

/// The event's time from `@timestamp`: ISO 8601, or epoch milliseconds as Elasticsearch also accepts.
pub(crate) fn event_time(ecs: &Value) -> Result<EpochMillis, EventError> {
    let values = fields::values(ecs, "@timestamp");
    let [value] = values.as_slice() else {
        return Err(if values.is_empty() {
            EventError::MissingTime
        } else {
            EventError::InvalidTime(values.join(", "))
        });
    };
    time::parse_iso8601(value)
        .or_else(|| epoch_millis(value))
        .filter(|millis| TIME_RANGE.contains(millis))
        .ok_or_else(|| EventError::InvalidTime(value.to_string()))
}

fn epoch_millis(value: &str) -> Option<EpochMillis> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}
