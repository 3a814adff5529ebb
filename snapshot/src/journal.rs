//! The journal beside a snapshot: the records that changed a history since the snapshot was written,
//! so that a host that cannot save the whole history after each record (the Fluent Bit filter, which
//! is never told it stops) loses nothing when killed.
//!
//! ```text
//! magic      8 bytes   "NTJRNL01"
//! base       32 bytes  SHA-256 of the snapshot this journal continues
//! entries, in the order the records came:
//!   length   u32 LE
//!   checksum u32 LE    CRC-32 of the record
//!   record   the record's bytes, as the rule was given them
//! ```
//! Replaying the entries through the rule restored from the base snapshot gives the history again (a
//! record the history already holds changes nothing). A journal whose base is not the snapshot
//! beside it continues an older one whose entries that snapshot already holds (killed between
//! writing the new snapshot and the new journal): it is ignored. A torn last entry (killed
//! mid-write) fails its length or checksum and ends the replay: its record's alert was never handed
//! back, so the record comes again.
//!
//! A format of its own, with no rule logic: the filter writes and replays it, and the host's `state
//! fold` replays it through whichever rule component it runs.

use sha2::{Digest, Sha256};

/// The files of a directory kept this way (the Fluent Bit filter's): the configuration, the
/// snapshot, and the journal continuing it.
pub const CONFIG_FILE: &str = "newterms.toml";
/// See [`CONFIG_FILE`].
pub const STATE_FILE: &str = "newterms.state";
/// See [`CONFIG_FILE`].
pub const JOURNAL_FILE: &str = "newterms.journal";

/// The journal's first bytes.
pub const MAGIC: &[u8; 8] = b"NTJRNL01";

/// The header of a new, empty journal continuing `snapshot`.
pub fn header(snapshot: &[u8]) -> Vec<u8> {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&base_of(snapshot));
    header
}

/// What names a snapshot in a journal's header: its SHA-256. `None` (no snapshot yet) is all zeros.
pub fn base_of(snapshot: &[u8]) -> [u8; 32] {
    Sha256::digest(snapshot).into()
}

/// The base of a journal written when there was no snapshot yet.
pub const NO_SNAPSHOT: [u8; 32] = [0; 32];

/// Appends the entry for `record` to `out` (cleared first).
pub fn entry(record: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(
        &u32::try_from(record.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
    out.extend_from_slice(record);
}

/// Why a journal cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalError {
    /// It does not start with [`MAGIC`].
    NotAJournal,
    /// Shorter than its header.
    TruncatedHeader,
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JournalError::NotAJournal => "is not a newterms journal",
            JournalError::TruncatedHeader => "has a truncated header",
        })
    }
}

impl std::error::Error for JournalError {}

/// The records of `journal` to replay over the snapshot whose base is `base` ([`base_of`], or
/// [`NO_SNAPSHOT`]): none when the journal continues another snapshot.
pub fn records<'a>(journal: &'a [u8], base: &[u8; 32]) -> Result<Records<'a>, JournalError> {
    let rest = journal
        .strip_prefix(MAGIC.as_slice())
        .ok_or(JournalError::NotAJournal)?;
    let (journal_base, entries) = rest
        .split_first_chunk::<32>()
        .ok_or(JournalError::TruncatedHeader)?;
    Ok(Records {
        entries: if journal_base == base { entries } else { &[] },
    })
}

/// The records of a journal, in order, up to a torn entry.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    entries: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (header, after) = self.entries.split_first_chunk::<8>()?;
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let record = after
            .get(..length)
            .filter(|record| crc32fast::hash(record) == crc);
        // A torn or damaged entry ends the journal.
        self.entries = match record {
            Some(_) => &after[length..],
            None => &[],
        };
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_of(snapshot: &[u8], records: &[&[u8]]) -> Vec<u8> {
        let mut journal = header(snapshot);
        let mut buffer = Vec::new();
        for record in records {
            entry(record, &mut buffer);
            journal.extend_from_slice(&buffer);
        }
        journal
    }

    #[test]
    fn gives_back_the_records_of_its_snapshot() {
        let journal = journal_of(b"snapshot", &[b"{\"a\":1}", b"", b"{\"b\":2}"]);
        let records: Vec<_> = records(&journal, &base_of(b"snapshot")).unwrap().collect();
        assert_eq!(records, [&b"{\"a\":1}"[..], b"", b"{\"b\":2}"]);
        // Another snapshot's journal: nothing to replay.
        assert_eq!(records_of_other(&journal), 0);
    }

    fn records_of_other(journal: &[u8]) -> usize {
        records(journal, &base_of(b"another")).unwrap().count()
    }

    #[test]
    fn a_torn_or_damaged_entry_ends_it() {
        let journal = journal_of(b"s", &[b"first", b"second record"]);
        let base = base_of(b"s");
        for cut in 40..journal.len() {
            let kept = records(&journal[..cut], &base).unwrap().count();
            let whole_entries = if cut >= journal.len() {
                2
            } else if cut >= 40 + 8 + 5 {
                1
            } else {
                0
            };
            assert_eq!(kept, whole_entries, "cut at {cut}");
        }
        let mut flipped = journal.clone();
        flipped[40 + 8 + 1] ^= 1;
        assert_eq!(records(&flipped, &base).unwrap().count(), 0);
    }

    #[test]
    fn refuses_what_is_no_journal() {
        assert_eq!(
            records(b"NTRMSNAP....", &NO_SNAPSHOT).unwrap_err(),
            JournalError::NotAJournal
        );
        assert_eq!(
            records(b"NTJRNL01abc", &NO_SNAPSHOT).unwrap_err(),
            JournalError::TruncatedHeader
        );
        assert_eq!(
            records(&journal_of(b"", &[]), &base_of(b""))
                .unwrap()
                .count(),
            0
        );
    }
}
