//! The full path: parse, map raw CloudTrail to ECS, query, time, exceptions, terms, history, alerts.

use std::borrow::Cow;

use serde_json::Value;

use super::{Detector, EventError, Route, config, terms};
use crate::alert::{AlertRule, AlertSource};
use crate::cloudtrail;
use crate::definition;
use crate::fastpath::Slot;
use crate::fields::{self, Fields};
use crate::history::TermKey;
use crate::time::{self, EpochMillis};

/// Event times outside years 0001 to 9999 are refused, as Elasticsearch's `date` type refuses them.
pub(crate) const TIME_RANGE: std::ops::RangeInclusive<EpochMillis> =
    -62_135_596_800_000..=253_402_300_799_999;

impl Detector {
    /// `then` on the ECS form of `text` (raw CloudTrail mapped) and whether it was raw, when the
    /// rule's query holds for it; `Ok(None)` when it does not.
    pub(super) fn when_matching<R>(
        query: &[definition::Clause],
        text: &str,
        then: impl FnOnce(&Value, bool) -> R,
    ) -> Result<Option<R>, EventError> {
        with_ecs(text, |ecs, raw| {
            let holds = definition::query_holds(query, &fields::Document(ecs)) == Some(true);
            holds.then(|| then(ecs, raw))
        })
    }

    /// Where processing `text` would observe terms (see [`Detector::route`]): their buckets and the
    /// event's time; nothing for an event that would be refused, excepted or has no term.
    pub(super) fn route_matching(&self, text: &str, count: u32) -> Route {
        let route = Self::when_matching(self.rule.query, text, |ecs, _| {
            let Ok(Observed::Terms(time, terms)) = self.observed(ecs) else {
                return Route::default();
            };
            let mut key = TermKey::default();
            let mut buckets: Vec<u32> = terms
                .iter()
                .map(|values| {
                    key.encode(values.iter().map(|value| value.as_ref()));
                    terms::bucket_of(key.as_bytes(), count)
                })
                .collect();
            buckets.sort_unstable();
            buckets.dedup();
            Route {
                buckets,
                time: Some(time),
            }
        });
        route.ok().flatten().unwrap_or_default()
    }

    /// What a matching event observes before the history: its time, then exceptions, then its term
    /// combinations (the order in which refusals are found). The one reading of a matching event
    /// that processing, [`Detector::route`] and [`Detector::extract_ndjson`] share.
    pub(super) fn observed<'a>(&self, ecs: &'a Value) -> Result<Observed<'a>, EventError> {
        let time = event_time(ecs)?;
        if self.is_excepted(ecs) {
            return Ok(Observed::Excepted);
        }
        Ok(match terms::combinations(self.profile.terms, ecs)? {
            Some(terms) => Observed::Terms(time, terms),
            None => Observed::NoTerm,
        })
    }

    /// Whether this instance keeps the term of this encoding (all of them unless partitioned).
    pub(super) fn owns(&self, key: &[u8]) -> bool {
        self.config
            .partition
            .is_none_or(|partition| terms::bucket_of(key, partition.count) == partition.index)
    }

    pub(super) fn evaluate(&mut self, text: &str) -> Result<Vec<String>, EventError> {
        let raised =
            Self::when_matching(self.rule.query, text, |ecs, raw| self.raise(text, ecs, raw))?;
        raised.unwrap_or(Ok(Vec::new()))
    }

    /// A matching event: time, exceptions, terms, history, alerts.
    fn raise(&mut self, text: &str, ecs: &Value, raw: bool) -> Result<Vec<String>, EventError> {
        self.stats.matched += 1;
        let (time, terms) = match self.observed(ecs)? {
            Observed::Terms(time, terms) => (time, terms),
            Observed::Excepted => {
                self.stats.excepted += 1;
                return Ok(Vec::new());
            }
            Observed::NoTerm => return Ok(Vec::new()),
        };
        let mut alerts = Vec::new();
        let mut key = TermKey::default();
        for values in terms {
            let values: Vec<&str> = values.iter().map(|value| value.as_ref()).collect();
            key.encode(values.iter().copied());
            if !self.owns(key.as_bytes()) {
                // Another instance's term.
                continue;
            }
            let new = self.history.observe(key.as_bytes(), time, self.window_ms);
            if new && !self.config.learn {
                alerts.push(self.alert(text, ecs, raw, time, &values, key.as_bytes()));
            }
        }
        Ok(alerts)
    }

    /// The alert document for the new term `values` (encoded as `key`) of the event `text`.
    pub(super) fn alert(
        &self,
        text: &str,
        ecs: &Value,
        raw: bool,
        time: EpochMillis,
        values: &[&str],
        key: &[u8],
    ) -> String {
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
        raiser.alert(&source, values, key)
    }

    fn is_excepted(&self, ecs: &Value) -> bool {
        config::excepted(&self.config.exceptions, ecs)
    }
}

/// What a matching event observes before the history (see [`Detector::observed`]).
pub(super) enum Observed<'a> {
    /// An exception dropped it.
    Excepted,
    /// A term field has no value.
    NoTerm,
    /// Its time and every combination of its term fields' values.
    Terms(EpochMillis, Vec<Vec<Cow<'a, str>>>),
}

/// `then` on the ECS form of the event `text` (raw CloudTrail mapped by the one table) and whether it
/// came raw: the parse every full evaluation starts with, the built-in rule's and a pack's.
pub(crate) fn with_ecs<R>(
    text: &str,
    then: impl FnOnce(&Value, bool) -> R,
) -> Result<R, EventError> {
    let document: Value =
        serde_json::from_str(text).map_err(|error| EventError::MalformedJson(error.to_string()))?;
    let Value::Object(object) = &document else {
        return Err(EventError::NotAnObject);
    };
    let raw = cloudtrail::is_raw_record(object);
    if raw {
        Ok(then(&cloudtrail::to_ecs(object), true))
    } else {
        Ok(then(&document, false))
    }
}

/// The ECS field of an event's time.
pub(crate) const TIME_FIELD: &str = "@timestamp";

/// The event's time from `@timestamp`: ISO 8601, or epoch milliseconds as Elasticsearch also accepts.
pub(crate) fn event_time(ecs: &(impl Fields + ?Sized)) -> Result<EpochMillis, EventError> {
    let values = ecs.values_of(TIME_FIELD);
    let [value] = values.as_slice() else {
        return Err(if values.is_empty() {
            EventError::MissingTime
        } else {
            EventError::InvalidTime(values.join(", "))
        });
    };
    time_of(value)
}

/// The time `@timestamp` holding `value` gives an event.
fn time_of(value: &str) -> Result<EpochMillis, EventError> {
    time::parse_iso8601(value)
        .or_else(|| epoch_millis(value))
        .filter(|millis| TIME_RANGE.contains(millis))
        .ok_or_else(|| EventError::InvalidTime(value.to_string()))
}

/// [`event_time`] of the document the raw mapping makes of a CloudTrail record whose `eventTime`
/// the scan found as `event_time`, without the document: the mapping keeps a time it cannot parse
/// as it is, and makes no `@timestamp` of a missing, `null` or `""` one. `None` when only the
/// document tells (a parsed time out of range, which the mapping rewrites before it is refused; a
/// time that is not a string).
pub(crate) fn raw_event_time(event_time: Slot<'_>) -> Option<Result<EpochMillis, EventError>> {
    let event_time = match event_time {
        Slot::Text(text) => text,
        Slot::Absent => return Some(Err(EventError::MissingTime)),
        Slot::Other => return None,
    };
    match time::parse_iso8601(event_time) {
        Some(millis) => TIME_RANGE.contains(&millis).then_some(Ok(millis)),
        None => Some(time_of(event_time)),
    }
}

fn epoch_millis(value: &str) -> Option<EpochMillis> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}
