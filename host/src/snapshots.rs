//! Tools over saved histories: what a snapshot holds, and the union of several.
//!
//! A first-seen history is a map from term to the latest time it was seen, so the histories of
//! workers that each saw a share of a stream merge exactly: for every term, the latest time wins.
//! These read the snapshot format with its own crate (`newterms-snapshot`), not the rule: the host
//! links no rule natively.

use std::collections::{BTreeMap, HashMap};

use newterms_snapshot::term::decode_term;
use newterms_snapshot::time::format_iso8601;
use newterms_snapshot::{self as snapshot, Identity, Parsed};

use crate::types::RestoreError;

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// Snapshot format version.
    pub format: u32,
    /// The rule that wrote it.
    pub rule_id: String,
    /// Term fields and the sources each is read from.
    pub term_signature: String,
    /// Terms kept.
    pub terms: u64,
    /// Terms evicted for room over the history's life.
    pub evictions: u64,
    /// Earliest and latest last-seen times, ISO 8601.
    pub oldest: Option<String>,
    /// Latest last-seen time.
    pub newest: Option<String>,
    /// Terms per value of the first term field (the account, for the Lambda rule).
    pub per_first_field: BTreeMap<String, u64>,
}

/// Summarises a snapshot.
pub fn inspect(bytes: &[u8]) -> Result<SnapshotSummary, RestoreError> {
    let parsed = snapshot::parse(bytes).map_err(from_guest)?;
    let arity = parsed.term_arity();
    let mut per_first_field = BTreeMap::new();
    for (index, (term, _)) in parsed.entries.iter().enumerate() {
        let values = decode_term(term, arity)
            .ok_or_else(|| RestoreError::Corrupt(format!("entry {index} is not a term")))?;
        let first = values.first().copied().unwrap_or_default().to_owned();
        *per_first_field.entry(first).or_insert(0) += 1;
    }
    let times = parsed.entries.iter().map(|(_, time)| *time);
    Ok(SnapshotSummary {
        format: snapshot::FORMAT_VERSION,
        rule_id: parsed.rule_id.clone(),
        term_signature: parsed.term_signature.clone(),
        terms: parsed.entries.len() as u64,
        evictions: parsed.evictions,
        oldest: times.clone().min().map(format_iso8601),
        newest: times.max().map(format_iso8601),
        per_first_field,
    })
}

/// The union of several snapshots of the same rule and term fields: every term with its latest
/// time, least recently seen first; evictions add up.
pub fn merge(snapshots: &[Vec<u8>]) -> Result<Vec<u8>, RestoreError> {
    let parsed: Vec<Parsed> = snapshots
        .iter()
        .map(|bytes| snapshot::parse(bytes).map_err(from_guest))
        .collect::<Result<_, _>>()?;
    let Some(first) = parsed.first() else {
        return Err(RestoreError::Corrupt("nothing to merge".into()));
    };
    let identity = Identity {
        rule_id: &first.rule_id,
        term_signature: &first.term_signature,
        term_arity: first.term_arity(),
    };
    let mut latest: HashMap<&[u8], i64> = HashMap::new();
    let mut evictions: u64 = 0;
    for (index, part) in parsed.iter().enumerate() {
        if part.rule_id != identity.rule_id || part.term_signature != identity.term_signature {
            return Err(RestoreError::Incompatible(format!(
                "snapshot {} is of rule {} with terms {}, snapshot 1 of rule {} with terms {}",
                index + 1,
                part.rule_id,
                part.term_signature,
                identity.rule_id,
                identity.term_signature
            )));
        }
        evictions = evictions.saturating_add(part.evictions);
        for (term, time) in &part.entries {
            let entry = latest.entry(&**term).or_insert(*time);
            *entry = (*entry).max(*time);
        }
    }
    // Oldest first, as a history lists them; ties in a fixed order so that merging is reproducible.
    let mut entries: Vec<(&[u8], i64)> = latest.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    Ok(snapshot::encode(
        &identity,
        evictions,
        entries.len(),
        entries.into_iter(),
    ))
}

fn from_guest(error: snapshot::RestoreError) -> RestoreError {
    use snapshot::RestoreError as Guest;
    match error {
        Guest::BadMagic => RestoreError::BadMagic,
        Guest::UnsupportedVersion(version) => RestoreError::UnsupportedVersion(version),
        Guest::Truncated => RestoreError::Truncated,
        Guest::ChecksumMismatch => RestoreError::ChecksumMismatch,
        Guest::Corrupt(why) => RestoreError::Corrupt(why.to_string()),
        Guest::Incompatible(why) => RestoreError::Incompatible(why.to_string()),
    }
}
