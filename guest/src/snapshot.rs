//! The snapshot format: first-seen history as bytes that a host can store and give back.
//!
//! ```text
//! magic        8 bytes  "NTRMSNAP"
//! version      u32 LE   FORMAT_VERSION
//! body length  u64 LE
//! body:
//!   rule id            u32 LE length + UTF-8
//!   term signature     u32 LE length + UTF-8   (term fields and their sources: which terms these are)
//!   evictions          u64 LE
//!   entry count        u64 LE
//!   entries, least recently updated first:
//!     term             u32 LE length + encoded term (see `history::TermKey`)
//!     last seen        i64 LE, milliseconds since the epoch
//! checksum     u32 LE   CRC-32 of everything before it
//! ```
//! Every read is bounds-checked: damaged bytes give a [`RestoreError`], never a panic.

use crate::history::is_term;
use crate::time::EpochMillis;

/// Identifies a snapshot of this project's rules.
pub const MAGIC: &[u8; 8] = b"NTRMSNAP";
/// The format `encode` writes.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8;
const CHECKSUM_LEN: usize = 4;
/// The smallest entry: an empty term and its time.
const MIN_ENTRY_LEN: usize = 4 + 8;

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// Not a snapshot of this project.
    BadMagic,
    /// A format version this code does not read.
    UnsupportedVersion(u32),
    /// Shorter than its header says.
    Truncated,
    /// The checksum does not match.
    ChecksumMismatch,
    /// The content does not decode.
    Corrupt(String),
    /// Another rule's snapshot, or other term fields.
    Incompatible(String),
}

/// What identifies the terms a snapshot holds.
pub struct Identity<'a> {
    /// The rule's id.
    pub rule_id: &'a str,
    /// Term fields and sources, as [`crate::detector::Detector::term_signature`] spells them.
    pub term_signature: &'a str,
    /// How many values make a term.
    pub term_arity: usize,
}

/// A decoded snapshot.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// Evictions counted by the history that wrote it.
    pub evictions: u64,
    /// Terms and their latest times, least recently updated first.
    pub entries: Vec<(Box<[u8]>, EpochMillis)>,
}

/// Writes a snapshot of `entries` (least recently updated first).
pub fn encode<'e>(
    identity: &Identity<'_>,
    evictions: u64,
    entry_count: usize,
    entries: impl Iterator<Item = (&'e [u8], EpochMillis)>,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + 64 + entry_count * 48);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&0_u64.to_le_bytes()); // body length, patched below
    put_bytes(&mut bytes, identity.rule_id.as_bytes());
    put_bytes(&mut bytes, identity.term_signature.as_bytes());
    bytes.extend_from_slice(&evictions.to_le_bytes());
    bytes.extend_from_slice(&(entry_count as u64).to_le_bytes());
    for (term, last_seen) in entries {
        put_bytes(&mut bytes, term);
        bytes.extend_from_slice(&last_seen.to_le_bytes());
    }
    let body_len = (bytes.len() - HEADER_LEN) as u64;
    bytes[12..HEADER_LEN].copy_from_slice(&body_len.to_le_bytes());
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Reads a snapshot written for `identity`.
pub fn decode(bytes: &[u8], identity: &Identity<'_>) -> Result<Contents, RestoreError> {
    let mut entries = Vec::new();
    let evictions = decode_with(bytes, identity, |visit| match visit {
        Visit::Count { entries: count, .. } => entries.reserve_exact(count),
        Visit::Entry(term, time) => entries.push((Box::from(term), time)),
    })?;
    Ok(Contents { evictions, entries })
}

/// What [`decode_with`] hands over, in order.
pub enum Visit<'a> {
    /// Before the entries: how many there are (known to be plausible), and at most how many bytes
    /// their terms take together.
    Count {
        /// Entries that follow.
        entries: usize,
        /// Upper bound of the terms' bytes.
        term_bytes: usize,
    },
    /// An entry: its term and latest time (least recently updated first).
    Entry(&'a [u8], EpochMillis),
}

/// Reads a snapshot written for `identity` without collecting it; returns the eviction count. On
/// error, what was visited must be discarded.
pub fn decode_with<'a>(
    bytes: &'a [u8],
    identity: &Identity<'_>,
    mut visit: impl FnMut(Visit<'a>),
) -> Result<u64, RestoreError> {
    let mut body = open(bytes)?;
    if body.rule_id != identity.rule_id {
        return Err(RestoreError::Incompatible(format!(
            "snapshot of rule {}, this is rule {}",
            body.rule_id, identity.rule_id
        )));
    }
    if body.term_signature != identity.term_signature {
        return Err(RestoreError::Incompatible(format!(
            "snapshot of terms {}, this profile uses {}",
            body.term_signature, identity.term_signature
        )));
    }
    visit(Visit::Count {
        entries: body.count,
        term_bytes: body
            .entries
            .remaining()
            .saturating_sub(MIN_ENTRY_LEN * body.count),
    });
    for index in 0..body.count {
        let (term, last_seen) = body.entry(index)?;
        if !is_term(term, identity.term_arity) {
            return Err(RestoreError::Corrupt(format!(
                "entry {index} is not a term of {} values",
                identity.term_arity
            )));
        }
        visit(Visit::Entry(term, last_seen));
    }
    body.finish()?;
    Ok(body.evictions)
}

/// A snapshot's content, checked for structure and checksum but not against any rule: for tools
/// that look into saved histories.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The rule that wrote it.
    pub rule_id: &'a str,
    /// Its term fields and sources.
    pub term_signature: &'a str,
    /// Evictions counted by the history that wrote it.
    pub evictions: u64,
    /// Encoded terms and their latest times, least recently updated first.
    pub entries: Vec<(&'a [u8], EpochMillis)>,
}

impl Parsed<'_> {
    /// How many values make one of its terms.
    pub fn term_arity(&self) -> usize {
        self.term_signature.split(';').count()
    }
}

/// Reads a snapshot of any rule.
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, RestoreError> {
    let mut body = open(bytes)?;
    let mut entries = Vec::with_capacity(body.count);
    for index in 0..body.count {
        entries.push(body.entry(index)?);
    }
    body.finish()?;
    Ok(Parsed {
        rule_id: body.rule_id,
        term_signature: body.term_signature,
        evictions: body.evictions,
        entries,
    })
}

/// A snapshot whose header, lengths and checksum were checked, positioned at its first entry.
struct Body<'a> {
    rule_id: &'a str,
    term_signature: &'a str,
    evictions: u64,
    /// Entries, already known to fit in the bytes left.
    count: usize,
    entries: Reader<'a>,
}

fn open(bytes: &[u8]) -> Result<Body<'_>, RestoreError> {
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) && !bytes.is_empty() {
            RestoreError::Truncated
        } else {
            RestoreError::BadMagic
        });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(RestoreError::BadMagic);
    }
    let mut header = Reader::new(&bytes[MAGIC.len()..]);
    let version = header.u32().ok_or(RestoreError::Truncated)?;
    if version != FORMAT_VERSION {
        return Err(RestoreError::UnsupportedVersion(version));
    }
    let body_len = header.u64().ok_or(RestoreError::Truncated)?;
    let expected_len = usize::try_from(body_len)
        .ok()
        .and_then(|body| body.checked_add(HEADER_LEN + CHECKSUM_LEN))
        .ok_or_else(|| RestoreError::Corrupt(format!("body length {body_len} is impossible")))?;
    if bytes.len() < expected_len {
        return Err(RestoreError::Truncated);
    }
    if bytes.len() > expected_len {
        return Err(RestoreError::Corrupt(format!(
            "{} bytes after the checksum",
            bytes.len() - expected_len
        )));
    }
    let (covered, checksum) = bytes.split_at(expected_len - CHECKSUM_LEN);
    if crc32fast::hash(covered).to_le_bytes() != checksum {
        return Err(RestoreError::ChecksumMismatch);
    }

    let mut body = Reader::new(&covered[HEADER_LEN..]);
    let rule_id = body.str().ok_or_else(|| corrupt("the rule id"))?;
    let term_signature = body.str().ok_or_else(|| corrupt("the term signature"))?;
    let evictions = body.u64().ok_or_else(|| corrupt("the eviction count"))?;
    let count = body.u64().ok_or_else(|| corrupt("the entry count"))?;
    // Bound the allocation by what the bytes can hold, whatever the count claims.
    let plausible = body.remaining() / MIN_ENTRY_LEN;
    if count > plausible as u64 {
        return Err(RestoreError::Corrupt(format!(
            "{count} entries cannot fit in {} bytes",
            body.remaining()
        )));
    }
    Ok(Body {
        rule_id,
        term_signature,
        evictions,
        count: count as usize,
        entries: body,
    })
}

impl<'a> Body<'a> {
    fn entry(&mut self, index: usize) -> Result<(&'a [u8], EpochMillis), RestoreError> {
        let term = self
            .entries
            .bytes()
            .ok_or_else(|| corrupt(&format!("entry {index}")))?;
        let last_seen = self
            .entries
            .i64()
            .ok_or_else(|| corrupt(&format!("the time of entry {index}")))?;
        Ok((term, last_seen))
    }

    fn finish(&self) -> Result<(), RestoreError> {
        match self.entries.remaining() {
            0 => Ok(()),
            left => Err(RestoreError::Corrupt(format!(
                "{left} bytes after the last entry"
            ))),
        }
    }
}

fn corrupt(what: &str) -> RestoreError {
    RestoreError::Corrupt(format!("cannot read {what}"))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Terms and identities are far below 4 GiB: the guest's whole memory is.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if count > self.bytes.len() {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let length = usize::try_from(self.u32()?).ok()?;
        self.take(length)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::TermKey;

    const IDENTITY: Identity<'static> = Identity {
        rule_id: "rule",
        term_signature: "a;b",
        term_arity: 2,
    };

    fn sample() -> (Vec<u8>, Contents) {
        let mut key = TermKey::default();
        let mut entries = Vec::new();
        for (account, user, time) in [("1", "alice", 10), ("1", "bob", -5), ("2", "", 7)] {
            key.encode([account, user]);
            entries.push((Box::from(key.as_bytes()), time));
        }
        let bytes = encode(
            &IDENTITY,
            3,
            entries.len(),
            entries.iter().map(|(term, time)| (&**term, *time)),
        );
        (
            bytes,
            Contents {
                evictions: 3,
                entries,
            },
        )
    }

    #[test]
    fn round_trips() {
        let (bytes, contents) = sample();
        assert_eq!(decode(&bytes, &IDENTITY), Ok(contents));
    }

    #[test]
    fn every_truncation_is_refused() {
        let (bytes, _) = sample();
        for length in 0..bytes.len() {
            let error = decode(&bytes[..length], &IDENTITY).expect_err("truncated");
            assert!(
                matches!(error, RestoreError::Truncated | RestoreError::BadMagic),
                "{length}: {error:?}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let (bytes, _) = sample();
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[index] ^= 1 << bit;
                assert!(
                    decode(&damaged, &IDENTITY).is_err(),
                    "byte {index} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn tells_what_is_wrong() {
        let (bytes, _) = sample();
        assert_eq!(
            decode(b"{\"Records\":[]}", &IDENTITY),
            Err(RestoreError::BadMagic)
        );
        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&2_u32.to_le_bytes());
        assert_eq!(
            decode(&newer, &IDENTITY),
            Err(RestoreError::UnsupportedVersion(2))
        );
        let other = Identity {
            term_signature: "a;c",
            ..IDENTITY
        };
        assert!(matches!(
            decode(&bytes, &other),
            Err(RestoreError::Incompatible(_))
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer, &IDENTITY),
            Err(RestoreError::Corrupt(_))
        ));
    }
}
