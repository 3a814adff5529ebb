//! Checkpoints of a scan over files: where it was, how long its output files were, and the rule's
//! history at that point, in one file replaced atomically. A scan over files that ends leaves a last
//! one that says it ended ([`Checkpoint::completed`], with no history: the state file has it), so that
//! the same command run again, because the first was killed while it exited, does nothing rather
//! than scan again and replace the alerts it wrote with none.
//!
//! ```text
//! magic    8 bytes  "NTCHKPT1"
//! header   u32 LE length + JSON (inputs, position, output lengths)
//! snapshot u64 LE length + the component's snapshot
//! checksum u32 LE   CRC-32 of everything before it
//! ```

use serde::{Deserialize, Serialize};

use crate::input::Position;

const MAGIC: &[u8; 8] = b"NTCHKPT1";

/// A scan's progress, saved so that a scan killed at any moment resumes where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// What the scan was made of: its inputs as given, and anything else that must match to resume.
    pub run: RunIdentity,
    /// Everything before this was processed.
    pub position: Position,
    /// Length of the alert output file at this point, if the scan writes one.
    pub output_len: Option<u64>,
    /// Length of the dead-letter file at this point, if the scan writes one.
    pub dead_letter_len: Option<u64>,
    /// The rule's history at this point.
    pub snapshot: Vec<u8>,
    /// The scan ended, over these files with this rule: the same scan of them, unchanged, has nothing
    /// to do.
    pub completed: Option<Completion>,
}

/// What an ended scan was: its input files as they were, and the rule and configuration it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The inputs' fingerprints, in order.
    pub files: Vec<Fingerprint>,
    /// The rule component and its configuration, as the host describes them.
    pub rule: String,
}

/// What a file input was when a scan read it: its length and modification time, which change when it
/// is written again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Length in bytes.
    pub len: u64,
    /// Modification time: seconds and nanoseconds since the epoch (zero where the system has none).
    pub modified: (u64, u32),
}

impl Fingerprint {
    /// The fingerprint of the file at `path`.
    pub fn of(path: &std::path::Path) -> std::io::Result<Self> {
        let metadata = std::fs::metadata(path)?;
        let modified = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or((0, 0), |since| (since.as_secs(), since.subsec_nanos()));
        Ok(Self {
            len: metadata.len(),
            modified,
        })
    }
}

/// What identifies a scan: a checkpoint is resumed only by the same scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The inputs as given on the command line.
    pub inputs: Vec<String>,
    /// The alert output file as given, if any.
    pub output: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    run: RunIdentity,
    position: Position,
    output_len: Option<u64>,
    dead_letter_len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed: Option<Completion>,
}

impl Checkpoint {
    /// The checkpoint as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let header = Header {
            run: self.run.clone(),
            position: self.position,
            output_len: self.output_len,
            dead_letter_len: self.dead_letter_len,
            completed: self.completed.clone(),
        };
        // Serialising plain data to a Vec cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut bytes = Vec::with_capacity(8 + 4 + header.len() + 8 + self.snapshot.len() + 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(self.snapshot.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&self.snapshot);
        let checksum = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Reads a checkpoint, or says why it cannot.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body = bytes
            .strip_prefix(MAGIC)
            .ok_or("not a newterms checkpoint (wrong magic number)")?;
        if bytes.len() < MAGIC.len() + 4 {
            return Err("truncated".into());
        }
        let (covered, checksum) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(covered).to_le_bytes() != checksum {
            return Err("damaged (checksum mismatch)".into());
        }
        let body = &body[..body.len() - 4];
        let (header_len, body) = take_u32(body).ok_or("truncated header")?;
        let (header, body) = take(body, header_len as usize).ok_or("truncated header")?;
        let header: Header =
            serde_json::from_slice(header).map_err(|error| format!("bad header: {error}"))?;
        let (snapshot_len, body) = take_u64(body).ok_or("truncated snapshot")?;
        let snapshot_len = usize::try_from(snapshot_len).map_err(|_| "impossible length")?;
        let (snapshot, rest) = take(body, snapshot_len).ok_or("truncated snapshot")?;
        if !rest.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(Self {
            run: header.run,
            position: header.position,
            output_len: header.output_len,
            dead_letter_len: header.dead_letter_len,
            snapshot: snapshot.to_vec(),
            completed: header.completed,
        })
    }
}

fn take(bytes: &[u8], count: usize) -> Option<(&[u8], &[u8])> {
    (count <= bytes.len()).then(|| bytes.split_at(count))
}

fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = take(bytes, 4)?;
    Some((u32::from_le_bytes(head.try_into().ok()?), rest))
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = take(bytes, 8)?;
    Some((u64::from_le_bytes(head.try_into().ok()?), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            run: RunIdentity {
                inputs: vec!["a.ndjson".into(), "-".into()],
                output: Some("alerts.ndjson".into()),
            },
            position: Position {
                input: 1,
                items: 42,
            },
            output_len: Some(1_234),
            dead_letter_len: None,
            snapshot: b"NTRMSNAP...".to_vec(),
            completed: None,
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(Checkpoint::decode(&sample().encode()), Ok(sample()));
        let completed = Checkpoint {
            completed: Some(Completion {
                files: vec![Fingerprint {
                    len: 7,
                    modified: (1_700_000_000, 5),
                }],
                rule: "default profile".into(),
            }),
            snapshot: Vec::new(),
            ..sample()
        };
        assert_eq!(Checkpoint::decode(&completed.encode()), Ok(completed));
    }

    #[test]
    fn refuses_damage_and_truncation() {
        let bytes = sample().encode();
        for length in 0..bytes.len() {
            assert!(Checkpoint::decode(&bytes[..length]).is_err(), "{length}");
        }
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x01;
            assert!(Checkpoint::decode(&damaged).is_err(), "{index}");
        }
    }
}
