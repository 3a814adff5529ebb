//! The plugin's state and its exports as plain Rust (native-testable); `abi` moves the bytes.

use newterms_guest::detector::{Detector, Stats};
use newterms_guest::engine::Engine;
use newterms_guest::rule_pack::{self, RulePackDetector};
use newterms_guest::snapshot::FORMAT_VERSION;
use serde_json::{Value, json};

use crate::config;

/// The key of the manifest's `config` that holds the key for hashing terms: 32 hex digits (128
/// random bits), so that names an attacker picks cannot be made to collide. Absent, the key is zero:
/// the same detections, without that protection.
pub const HASH_KEY: &str = "hash_key";

/// One plugin instance: the rule (built in, or rules from rule files) and what the last batch
/// refused.
#[derive(Default)]
pub struct Plugin {
    engine: Engine,
    /// The refused lines of the last `process_ndjson`, as JSON lines.
    errors: Vec<u8>,
}

impl Plugin {
    /// `configure`: replaces the configuration (JSON, the `--config` keys) and clears history and
    /// counters; `hash_key` is the manifest's [`HASH_KEY`], if set. On error nothing changes.
    pub fn configure(&mut self, json: &[u8], hash_key: Option<&[u8]>) -> Result<(), String> {
        let config = with_hash_key(config::from_json(json)?, hash_key)?;
        // The schema ran the rule's own checks: a refusal here would be a rule crate bug.
        self.engine = Engine::built_in(config).map_err(|error| format!("refused: {error:?}"))?;
        self.errors.clear();
        Ok(())
    }

    /// `configure_rules`: as `configure`, with Elastic rule files run in place of the built-in
    /// rule. The input is JSON: `{"config": {...the configure keys...}, "rules": [{"name": "...",
    /// "text": "...TOML..."}, ...]}` (the plugin reads no files: the host hands it their texts). A
    /// refused rule file is the error, naming it; on error nothing changes.
    pub fn configure_rules(&mut self, json: &[u8], hash_key: Option<&[u8]>) -> Result<(), String> {
        let (config, files) = config::rules_from_json(json)?;
        let config = with_hash_key(config, hash_key)?;
        self.engine = Engine::from_files(&files, config)?;
        self.errors.clear();
        Ok(())
    }

    /// `process_ndjson`: the alerts the buffer's lines raise, in order, one a line; refused lines
    /// are kept for [`Plugin::errors`].
    pub fn process_ndjson(&mut self, buffer: &[u8]) -> Vec<u8> {
        let mut alerts = Vec::new();
        self.errors.clear();
        for outcome in self.engine.process_ndjson(buffer) {
            match outcome.outcome {
                Ok(raised) => {
                    for alert in raised {
                        alerts.extend_from_slice(alert.as_bytes());
                        alerts.push(b'\n');
                    }
                }
                Err(error) => {
                    let line =
                        json!({"line": u64::from(outcome.line) + 1, "error": error.to_string()});
                    self.errors.extend_from_slice(line.to_string().as_bytes());
                    self.errors.push(b'\n');
                }
            }
        }
        alerts
    }

    /// `errors`: the refused lines of the last `process_ndjson`.
    pub fn errors(&self) -> &[u8] {
        &self.errors
    }

    /// `stats`: the rule's counters since `configure`, as JSON.
    pub fn stats(&self) -> Vec<u8> {
        let Stats {
            events,
            matched,
            excepted,
            alerts,
            errors,
            terms,
            evictions,
        } = self.engine.stats();
        json!({
            "events": events, "matched": matched, "excepted": excepted, "alerts": alerts,
            "errors": errors, "terms": terms, "evictions": evictions,
        })
        .to_string()
        .into_bytes()
    }

    /// `snapshot`: the first-seen history in the component's snapshot format.
    pub fn snapshot(&self) -> Vec<u8> {
        self.engine.snapshot()
    }

    /// `restore`: replaces the history with a snapshot's; on error it is unchanged. Under rule
    /// files, what the snapshot held that was not kept (a rule removed or changed), one a line.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<Vec<u8>, String> {
        let notices = self
            .engine
            .restore(snapshot)
            .map_err(|error| format!("cannot restore the snapshot: {error}"))?;
        Ok(notices
            .iter()
            .flat_map(|notice| format!("{notice}\n").into_bytes())
            .collect())
    }

    /// `metadata`: the rule's identity and the configuration in force, as JSON (the fields of the
    /// component's `rule-metadata`); under rule files, each rule's identity, query and terms.
    pub fn metadata(&self) -> Vec<u8> {
        match &self.engine {
            Engine::BuiltIn(detector) => built_in_metadata(detector),
            Engine::Pack(pack) => pack_metadata(pack),
        }
        .to_string()
        .into_bytes()
    }
}

fn built_in_metadata(detector: &Detector) -> Value {
    let rule = detector.rule();
    let reference = |reference: &newterms_guest::definition::AttackReference| json!({"id": reference.id, "name": reference.name, "reference": reference.reference});
    let terms: Vec<&str> = detector
        .profile()
        .terms
        .iter()
        .map(|term| term.name)
        .collect();
    json!({
        "name": rule.name,
        "rule_id": rule.rule_id,
        "rule_version": rule.version,
        "severity": rule.severity,
        "risk_score": rule.risk_score,
        "tactic": reference(&rule.tactic),
        "techniques": rule.techniques.iter().map(reference).collect::<Vec<Value>>(),
        "tags": rule.tags,
        "query": rule.kql,
        "profile": detector.config().profile.name(),
        "window_ms": detector.window_ms(),
        "term_fields": terms,
        "capacity": detector.capacity(),
        "learn": detector.config().learn,
        "snapshot_format": FORMAT_VERSION,
    })
}

fn pack_metadata(pack: &RulePackDetector) -> Value {
    let config = pack.config();
    let rules: Vec<Value> = pack
        .pack()
        .rules()
        .iter()
        .map(|rule| {
            json!({
                "rule_id": rule.rule_id,
                "name": rule.name,
                "query": rule.query_text.trim(),
                "term_fields": rule.new_terms_fields,
                "window_ms": rule.window_ms,
                "enrichment": rule_pack::enrichment_fields(rule),
            })
        })
        .collect();
    json!({
        "rule_id": rule_pack::PACK_RULE_ID,
        "name": format!("{} rules from rule files", rules.len()),
        "rules": rules,
        "capacity": config.capacity(),
        "learn": config.learn,
        "snapshot_format": FORMAT_VERSION,
    })
}

/// `config` with the manifest's hash key, if the host application set one.
fn with_hash_key(
    mut config: newterms_guest::Config,
    hash_key: Option<&[u8]>,
) -> Result<newterms_guest::Config, String> {
    if let Some(hex) = hash_key {
        config.hash_key = parse_hash_key(hex)
            .ok_or_else(|| format!("the Extism config `{HASH_KEY}` is not 32 hex digits"))?;
    }
    Ok(config)
}

fn parse_hash_key(hex: &[u8]) -> Option<(u64, u64)> {
    let hex = std::str::from_utf8(hex).ok()?.trim();
    if hex.len() != 32 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let half = |range| u64::from_str_radix(hex.get(range)?, 16).ok();
    Some((half(0..16)?, half(16..32)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys() {
        assert_eq!(
            parse_hash_key(b"000000000000000100000000000000ff"),
            Some((1, 255))
        );
        assert_eq!(parse_hash_key(b"00"), None);
        assert_eq!(parse_hash_key(b"g0000000000000000000000000000000"), None);
        assert_eq!(parse_hash_key(b"+0000000000000010000000000000000"), None);
    }

    #[test]
    fn a_hash_key_gives_the_same_alerts_and_snapshot() {
        let events = b"{\"eventSource\":\"lambda.amazonaws.com\",\"eventName\":\"Invoke\",\"eventTime\":\"2024-03-01T00:00:00Z\",\"recipientAccountId\":\"1\",\"userIdentity\":{\"type\":\"IAMUser\",\"arn\":\"arn:aws:iam::1:user/a\",\"userName\":\"a\"}}\n";
        let mut zero = Plugin::default();
        let mut keyed = Plugin::default();
        assert_eq!(zero.configure(b"{}", None), Ok(()));
        assert_eq!(
            keyed.configure(b"{}", Some(b"0123456789abcdef0123456789ABCDEF")),
            Ok(())
        );
        let alerts = zero.process_ndjson(events);
        assert_eq!(alerts.iter().filter(|&&byte| byte == b'\n').count(), 1);
        assert_eq!(keyed.process_ndjson(events), alerts);
        assert_eq!(keyed.snapshot(), zero.snapshot());
        assert!(keyed.configure(b"{}", Some(b"short")).is_err());
    }
}
