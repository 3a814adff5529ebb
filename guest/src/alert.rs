//! Alert documents in the Elastic Security shape.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::definition::{AttackReference, ProfileDefinition, RuleDefinition};
use crate::fields;
use crate::kql::rule::{Reference, Rule};
use crate::time::{self, EpochMillis};

/// What an alert is built from.
pub struct AlertSource<'a> {
    /// The event as ECS (for raw CloudTrail, the mapped document).
    pub ecs: &'a Value,
    /// The raw record's text, when the event came as raw CloudTrail: kept as `event.original`.
    pub original: Option<&'a str>,
    /// The event's JSON text as given, which identifies an event that has no `event.id`.
    pub text: &'a str,
    /// The event's time.
    pub time: EpochMillis,
}

/// The rule and profile that raise alerts.
pub struct AlertRule<'a> {
    /// The rule.
    pub rule: &'a RuleDefinition,
    /// The profile in force.
    pub profile: &'a ProfileDefinition,
    /// The window in force.
    pub window_ms: u64,
}

impl AlertRule<'_> {
    /// The alert for a new term (`values`, in term-field order; `term_key` its encoding) of `source`.
    pub fn alert(&self, source: &AlertSource<'_>, values: &[&str], term_key: &[u8]) -> String {
        let rule = self.rule;
        let raiser = Raiser {
            rule_id: rule.rule_id,
            name: rule.name,
            version: json!(rule.version),
            severity: rule.severity,
            risk_score: json!(rule.risk_score),
            tags: json!(rule.tags),
            threat: json!([{
                "framework": "MITRE ATT&CK",
                "tactic": reference(&rule.tactic),
                "technique": rule.techniques.iter().map(reference).collect::<Vec<_>>(),
            }]),
            parameters: json!({
                "query": rule.kql,
                "language": "kuery",
                "new_terms_fields": self.profile.terms.iter().map(|term| term.name).collect::<Vec<_>>(),
                "history_window_start": history_window_start(self.window_ms),
                "profile": self.profile.profile.name(),
            }),
        };
        new_terms_alert(&raiser, source, values, term_key)
    }
}

/// The alert for a new term (`values`, in the rule's term-field order; `term_key` its encoding) of
/// `source`, raised by a rule from a rule file: its metadata as the file gives it.
pub fn rule_file_alert(
    rule: &Rule,
    source: &AlertSource<'_>,
    values: &[&str],
    term_key: &[u8],
) -> String {
    let threat: Vec<Value> = rule
        .threat
        .iter()
        .map(|threat| {
            json!({
                "framework": threat.framework,
                "tactic": file_reference(&threat.tactic),
                "technique": threat.techniques.iter().map(|technique| {
                    let mut value = file_reference(&technique.technique);
                    if !technique.subtechniques.is_empty()
                        && let Value::Object(map) = &mut value
                    {
                        map.insert(
                            "subtechnique".to_owned(),
                            technique.subtechniques.iter().map(file_reference).collect(),
                        );
                    }
                    value
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let raiser = Raiser {
        rule_id: &rule.rule_id,
        name: &rule.name,
        version: json!(rule.version),
        severity: &rule.severity,
        risk_score: json!(rule.risk_score),
        tags: json!(rule.tags),
        threat: json!(threat),
        parameters: json!({
            "query": rule.query_text,
            "language": "kuery",
            "new_terms_fields": rule.new_terms_fields,
            "history_window_start": rule.history_window_start,
        }),
    };
    new_terms_alert(&raiser, source, values, term_key)
}

/// What of an alert comes from the rule that raises it: the built-in rule's definition or a rule
/// file's metadata.
struct Raiser<'a> {
    rule_id: &'a str,
    name: &'a str,
    version: Value,
    severity: &'a str,
    risk_score: Value,
    tags: Value,
    threat: Value,
    parameters: Value,
}

/// The one shape of a new-terms alert: `kibana.alert` with the rule's part from `raiser`.
fn new_terms_alert(
    raiser: &Raiser<'_>,
    source: &AlertSource<'_>,
    values: &[&str],
    term_key: &[u8],
) -> String {
    let event_id = first_value(source.ecs, "event.id");
    let alert = json!({
        "uuid": alert_uuid(raiser.rule_id, event_id.as_deref(), source.text, term_key),
        "original_time": time::format_iso8601(source.time),
        "new_terms": values,
        "reason": reason(raiser.severity, raiser.name, source.ecs),
        "severity": raiser.severity,
        "risk_score": raiser.risk_score,
        "status": "active",
        "workflow_status": "open",
        "rule": {
            "name": raiser.name,
            "rule_id": raiser.rule_id,
            "version": raiser.version,
            "type": "new_terms",
            "category": "New Terms Rule",
            "severity": raiser.severity,
            "risk_score": raiser.risk_score,
            "tags": raiser.tags,
            "threat": raiser.threat,
            "parameters": raiser.parameters,
        },
    });
    signal(source, alert)
}

/// The event as a signal document carrying `alert` as `kibana.alert`.
fn signal(source: &AlertSource<'_>, alert: Value) -> String {
    let original = source.original.map(Value::from);
    let kind = Value::from("signal");
    let mut changes = Vec::with_capacity(3);
    if let Some(original) = &original {
        changes.push(("event.original", original));
    }
    changes.push(("event.kind", &kind));
    changes.push(("kibana.alert", &alert));
    fields::to_string_with(source.ecs.as_object(), &changes)
}

fn file_reference(reference: &Reference) -> Value {
    json!({"id": reference.id, "name": reference.name, "reference": reference.reference})
}

fn reference(attack: &AttackReference) -> Value {
    json!({"id": attack.id, "name": attack.name, "reference": attack.reference})
}

fn first_value(document: &Value, field: &str) -> Option<String> {
    fields::values(document, field)
        .into_iter()
        .next()
        .map(|value| value.into_owned())
}

/// "event with source 203.0.113.7 by deploy-bot created medium alert <rule name>.", as Kibana words it.
fn reason(severity: &str, name: &str, ecs: &Value) -> String {
    let mut reason = String::from("event");
    let source = first_value(ecs, "source.ip").or_else(|| first_value(ecs, "source.address"));
    if let Some(source) = source {
        reason.push_str(" with source ");
        reason.push_str(&source);
    }
    if let Some(user) = first_value(ecs, "user.name") {
        reason.push_str(" by ");
        reason.push_str(&user);
    }
    reason.push_str(&format!(" created {severity} alert {name}."));
    reason
}

/// Kibana's spelling of a window: `now-7d`, or the largest unit that divides it.
fn history_window_start(window_ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    for (unit_ms, unit) in UNITS {
        if window_ms.is_multiple_of(unit_ms) {
            return format!("now-{}{unit}", window_ms / unit_ms);
        }
    }
    format!("now-{window_ms}ms")
}

/// A hash of the rule, the event and the term: a redelivered event gets the same id, so a consumer can
/// deduplicate on it. An event without `event.id` is identified by its text.
fn alert_uuid(rule_id: &str, event_id: Option<&str>, text: &str, term_key: &[u8]) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(rule_id.as_bytes());
    match event_id {
        Some(id) => {
            field(b"event.id");
            field(id.as_bytes());
        }
        None => {
            field(b"text");
            field(text.as_bytes());
        }
    }
    field(term_key);
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_depends_on_event_and_term_only() {
        let a = alert_uuid("r", Some("e1"), "{}", b"t");
        assert_eq!(a, alert_uuid("r", Some("e1"), "{\"other\":1}", b"t"));
        assert_ne!(a, alert_uuid("r", Some("e2"), "{}", b"t"));
        assert_ne!(a, alert_uuid("r", Some("e1"), "{}", b"u"));
        assert_ne!(a, alert_uuid("r2", Some("e1"), "{}", b"t"));
        assert_ne!(
            alert_uuid("r", None, "{\"a\":1}", b"t"),
            alert_uuid("r", None, "{\"a\":2}", b"t")
        );
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn windows_read_as_kibana_writes_them() {
        assert_eq!(history_window_start(7 * 86_400_000), "now-7d");
        assert_eq!(history_window_start(90 * 60_000), "now-90m");
        assert_eq!(history_window_start(1_500), "now-1500ms");
    }
}
