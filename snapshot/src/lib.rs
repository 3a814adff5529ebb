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
//! Both directions also work in pieces ([`Writer`], [`Decoder`]), so that a component never holds a
//! whole snapshot in its linear memory, which does not shrink once grown. Every read is
//! bounds-checked: damaged bytes give a [`RestoreError`], never a panic.
//!
//! A crate of its own, with no rule logic and no component bindings, so that tools over saved
//! histories (the host's `state inspect` and `state merge`) read the format without linking a rule.
//! A change to the bytes is a new [`FORMAT_VERSION`].

pub mod term;
pub mod time;

use term::is_term;
use time::EpochMillis;

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
    /// Term fields and sources, as the rule spells them (`name<-source|source;…`).
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
    put_header(&mut bytes, identity, evictions, entry_count);
    for (term, last_seen) in entries {
        put_entry(&mut bytes, term, last_seen);
    }
    let body_len = bytes.len() - HEADER_LEN;
    set_body_len(&mut bytes, body_len);
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// The header and the body up to the first entry, with a body length of 0 for [`set_body_len`].
fn put_header(out: &mut Vec<u8>, identity: &Identity<'_>, evictions: u64, entry_count: usize) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0_u64.to_le_bytes());
    put_bytes(out, identity.rule_id.as_bytes());
    put_bytes(out, identity.term_signature.as_bytes());
    out.extend_from_slice(&evictions.to_le_bytes());
    out.extend_from_slice(&(entry_count as u64).to_le_bytes());
}

/// Writes the body length into a header [`put_header`] made.
fn set_body_len(header: &mut [u8], body_len: usize) {
    header[MAGIC.len() + 4..HEADER_LEN].copy_from_slice(&(body_len as u64).to_le_bytes());
}

fn put_entry(out: &mut Vec<u8>, term: &[u8], last_seen: EpochMillis) {
    put_bytes(out, term);
    out.extend_from_slice(&last_seen.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Terms and identities are far below 4 GiB: the guest's whole memory is.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A history as a [`Writer`] walks it: entries least recently updated first, reached through a
/// cursor that outlives a borrow of the history.
pub trait Entries {
    /// A place in the history's order.
    type Cursor: Copy;
    /// How many entries there are.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes of all the terms together.
    fn term_bytes(&self) -> usize;
    /// Evictions counted by the history.
    fn evictions(&self) -> u64;
    /// The cursor of the least recently updated entry.
    fn first(&self) -> Self::Cursor;
    /// The entry at `cursor` and the cursor of the next one; `None` past the last.
    fn at(&self, cursor: Self::Cursor) -> Option<(&[u8], EpochMillis, Self::Cursor)>;
}

/// A snapshot of a history ([`Entries`]) handed out in pieces, the same bytes [`encode`] writes.
/// It walks the history with a cursor, so the history must not change between pieces (the
/// detector ends a writer whenever its history changes).
#[derive(Debug)]
pub struct Writer<C> {
    length: u64,
    handed_out: u64,
    crc: crc32fast::Hasher,
    /// Bytes made but not handed out yet: the header, or the end of an entry that did not fit.
    carry: Vec<u8>,
    carried: usize,
    /// The next entry to write; `None` once the checksum is made.
    next: Option<C>,
}

impl<C: Copy> Writer<C> {
    /// Starts a snapshot of `history`.
    pub fn new(identity: &Identity<'_>, history: &impl Entries<Cursor = C>) -> Self {
        let entries = history.len();
        let mut carry = Vec::new();
        put_header(&mut carry, identity, history.evictions(), entries);
        // The body: what the header holds past its fixed part, then every entry.
        let body_len = carry.len() - HEADER_LEN + entries * MIN_ENTRY_LEN + history.term_bytes();
        set_body_len(&mut carry, body_len);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&carry);
        Self {
            length: (HEADER_LEN + body_len + CHECKSUM_LEN) as u64,
            handed_out: 0,
            crc,
            carry,
            carried: 0,
            next: Some(history.first()),
        }
    }

    /// The snapshot's length in bytes.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The next at most `max` bytes (at least one while any are left: a `max` of 0 counts as 1);
    /// empty at the end.
    pub fn read(&mut self, history: &impl Entries<Cursor = C>, max: usize) -> Vec<u8> {
        let max = max.max(1);
        let left = usize::try_from(self.length - self.handed_out).unwrap_or(usize::MAX);
        let mut piece = Vec::with_capacity(max.min(left));
        loop {
            let carried = &self.carry[self.carried..];
            let taken = carried.len().min(max - piece.len());
            piece.extend_from_slice(&carried[..taken]);
            self.carried += taken;
            if piece.len() == max {
                break;
            }
            self.carry.clear();
            self.carried = 0;
            let Some(mut cursor) = self.next else { break };
            // Entries go straight into the piece; one that does not fit whole goes to the carry,
            // so that the piece never outgrows what was reserved for it.
            let from = piece.len();
            let mut overflow = false;
            let mut more = true;
            while piece.len() < max && !overflow {
                let Some((term, last_seen, after)) = history.at(cursor) else {
                    more = false;
                    break;
                };
                cursor = after;
                overflow = piece.len() + MIN_ENTRY_LEN + term.len() > max;
                let out = if overflow {
                    &mut self.carry
                } else {
                    &mut piece
                };
                put_entry(out, term, last_seen);
            }
            self.crc.update(&piece[from..]);
            self.crc.update(&self.carry);
            self.next = more.then_some(cursor);
            if !more {
                let checksum = std::mem::take(&mut self.crc).finalize();
                self.carry.extend_from_slice(&checksum.to_le_bytes());
            }
        }
        self.handed_out += piece.len() as u64;
        piece
    }
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

/// What a [`Decoder`] hands over, in order.
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
pub fn decode_with(
    bytes: &[u8],
    identity: &Identity<'_>,
    mut visit: impl FnMut(Visit<'_>),
) -> Result<u64, RestoreError> {
    let mut decoder = Decoder::new(bytes.len() as u64);
    decoder.write(bytes, Some(identity), &mut visit)?;
    decoder.finish()
}

/// A snapshot's content, checked for structure and checksum but not against any rule: for tools
/// that look into saved histories.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The rule that wrote it.
    pub rule_id: String,
    /// Its term fields and sources.
    pub term_signature: String,
    /// Evictions counted by the history that wrote it.
    pub evictions: u64,
    /// Encoded terms and their latest times, least recently updated first.
    pub entries: Vec<(Box<[u8]>, EpochMillis)>,
}

impl Parsed {
    /// How many values make one of its terms.
    pub fn term_arity(&self) -> usize {
        self.term_signature.split(';').count()
    }
}

/// Reads a snapshot of any rule.
pub fn parse(bytes: &[u8]) -> Result<Parsed, RestoreError> {
    let mut decoder = Decoder::new(bytes.len() as u64);
    let mut entries = Vec::new();
    decoder.write(bytes, None, |visit| match visit {
        Visit::Count { entries: count, .. } => entries.reserve_exact(count),
        Visit::Entry(term, time) => entries.push((Box::from(term), time)),
    })?;
    let evictions = decoder.finish()?;
    Ok(Parsed {
        rule_id: decoder.rule_id,
        term_signature: decoder.term_signature,
        evictions,
        entries,
    })
}

/// What a [`Decoder`] reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Magic,
    Version,
    BodyLength,
    RuleIdLength,
    RuleId(usize),
    SignatureLength,
    Signature(usize),
    Evictions,
    Count,
    EntryLength,
    /// A term of this many bytes and its time.
    Entry(usize),
    /// Bytes up to the checksum, after an error in the body (reported once the checksum is known
    /// to match, as a whole-buffer check would).
    Skip(u64),
    Checksum,
    Done,
}

/// Reads a snapshot given in pieces of any size, keeping at most one item (an entry, the rule id)
/// of it at a time. Errors come in the order a check of the whole buffer gives them: the header,
/// then the length, then the checksum, then the content.
#[derive(Debug)]
pub struct Decoder {
    /// The length announced: the bytes that will be written.
    length: u64,
    received: u64,
    /// Where the item being read starts.
    position: u64,
    /// Where the checksum starts, once the header is read.
    body_end: u64,
    crc: crc32fast::Hasher,
    /// The start of an item that a piece ended in.
    pending: Vec<u8>,
    step: Step,
    /// An error that ends the reading at once.
    fatal: Option<RestoreError>,
    /// The first error in the body.
    failure: Option<RestoreError>,
    rule_id: String,
    term_signature: String,
    evictions: u64,
    count: u64,
    index: u64,
}

impl Decoder {
    /// Starts reading a snapshot of `length` bytes.
    pub fn new(length: u64) -> Self {
        Self {
            length,
            received: 0,
            position: 0,
            body_end: u64::MAX,
            crc: crc32fast::Hasher::new(),
            pending: Vec::new(),
            step: Step::Magic,
            fatal: None,
            failure: None,
            rule_id: String::new(),
            term_signature: String::new(),
            evictions: 0,
            count: 0,
            index: 0,
        }
    }

    /// Reads the next piece. `identity` is what the snapshot must be of (`None` takes any rule's).
    /// An error here is final; errors in the body are held until [`Decoder::finish`].
    pub fn write(
        &mut self,
        mut piece: &[u8],
        identity: Option<&Identity<'_>>,
        mut visit: impl FnMut(Visit<'_>),
    ) -> Result<(), RestoreError> {
        if let Some(error) = &self.fatal {
            return Err(error.clone());
        }
        if piece.len() as u64 > self.length - self.received {
            return Err(self.fail_now(RestoreError::Corrupt(format!(
                "more than the {} bytes announced",
                self.length
            ))));
        }
        self.received += piece.len() as u64;
        while !piece.is_empty() {
            if let Step::Skip(left) = self.step {
                let skipped = left.min(piece.len() as u64) as usize;
                self.crc.update(&piece[..skipped]);
                piece = &piece[skipped..];
                self.position += skipped as u64;
                if left == skipped as u64 {
                    self.step = Step::Checksum;
                } else {
                    self.step = Step::Skip(left - skipped as u64);
                }
                continue;
            }
            let need = self.need();
            if self.pending.is_empty() && piece.len() >= need {
                let (item, rest) = piece.split_at(need);
                piece = rest;
                self.consume(item, identity, &mut visit);
            } else {
                let taken = (need - self.pending.len()).min(piece.len());
                self.pending.extend_from_slice(&piece[..taken]);
                piece = &piece[taken..];
                if self.step == Step::Magic && !MAGIC.starts_with(&self.pending) {
                    return Err(self.fail_now(RestoreError::BadMagic));
                }
                if self.pending.len() < need {
                    break;
                }
                let item = std::mem::take(&mut self.pending);
                self.consume(&item, identity, &mut visit);
                self.pending = item;
                self.pending.clear();
            }
            if let Some(error) = &self.fatal {
                return Err(error.clone());
            }
        }
        Ok(())
    }

    /// Ends the reading: the eviction count if the whole snapshot was read and is sound.
    pub fn finish(&mut self) -> Result<u64, RestoreError> {
        if let Some(error) = &self.fatal {
            return Err(error.clone());
        }
        if self.step != Step::Done {
            let started = self.step != Step::Magic || !self.pending.is_empty();
            return Err(if started {
                RestoreError::Truncated
            } else {
                RestoreError::BadMagic
            });
        }
        match &self.failure {
            Some(error) => Err(error.clone()),
            None => Ok(self.evictions),
        }
    }

    fn fail_now(&mut self, error: RestoreError) -> RestoreError {
        self.fatal = Some(error.clone());
        error
    }

    /// Bytes the current step reads at once.
    fn need(&self) -> usize {
        match self.step {
            Step::Magic => MAGIC.len(),
            Step::Version | Step::RuleIdLength | Step::SignatureLength | Step::EntryLength => 4,
            Step::Checksum => CHECKSUM_LEN,
            Step::BodyLength | Step::Evictions | Step::Count => 8,
            Step::RuleId(length) | Step::Signature(length) => length,
            Step::Entry(length) => length + 8,
            Step::Skip(_) | Step::Done => 0,
        }
    }

    /// Moves to the body item `step` if the body holds it, else records that `what` cannot be read.
    fn expect(&mut self, step: Step, what: impl FnOnce() -> String) {
        self.step = step;
        if self.need() as u64 > self.body_end - self.position {
            self.fail(corrupt(&what()));
        }
    }

    fn consume(
        &mut self,
        item: &[u8],
        identity: Option<&Identity<'_>>,
        visit: &mut impl FnMut(Visit<'_>),
    ) {
        if self.step != Step::Checksum {
            self.crc.update(item);
        }
        self.position += item.len() as u64;
        let number = |item: &[u8]| {
            let mut bytes = [0; 8];
            bytes[..item.len()].copy_from_slice(item);
            u64::from_le_bytes(bytes)
        };
        match self.step {
            Step::Magic => {
                if item != MAGIC {
                    self.fail_now(RestoreError::BadMagic);
                }
                self.step = Step::Version;
            }
            Step::Version => {
                let version = number(item) as u32;
                if version != FORMAT_VERSION {
                    self.fail_now(RestoreError::UnsupportedVersion(version));
                }
                self.step = Step::BodyLength;
            }
            Step::BodyLength => {
                let body_len = number(item);
                let Some(expected) = body_len
                    .checked_add((HEADER_LEN + CHECKSUM_LEN) as u64)
                    .filter(|&expected| usize::try_from(expected).is_ok())
                else {
                    self.fail_now(RestoreError::Corrupt(format!(
                        "body length {body_len} is impossible"
                    )));
                    return;
                };
                if self.length < expected {
                    self.fail_now(RestoreError::Truncated);
                } else if self.length > expected {
                    self.fail_now(RestoreError::Corrupt(format!(
                        "{} bytes after the checksum",
                        self.length - expected
                    )));
                }
                self.body_end = expected - CHECKSUM_LEN as u64;
                self.expect(Step::RuleIdLength, || "the rule id".into());
            }
            Step::RuleIdLength => {
                let length = number(item) as usize;
                self.expect(Step::RuleId(length), || "the rule id".into());
            }
            Step::RuleId(_) => match std::str::from_utf8(item) {
                Ok(rule_id) => {
                    self.rule_id = rule_id.to_owned();
                    self.expect(Step::SignatureLength, || "the term signature".into());
                }
                Err(_) => self.fail(corrupt("the rule id")),
            },
            Step::SignatureLength => {
                let length = number(item) as usize;
                self.expect(Step::Signature(length), || "the term signature".into());
            }
            Step::Signature(_) => match std::str::from_utf8(item) {
                Ok(signature) => {
                    self.term_signature = signature.to_owned();
                    self.expect(Step::Evictions, || "the eviction count".into());
                }
                Err(_) => self.fail(corrupt("the term signature")),
            },
            Step::Evictions => {
                self.evictions = number(item);
                self.expect(Step::Count, || "the entry count".into());
            }
            Step::Count => self.entry_count(number(item), identity, visit),
            Step::EntryLength => {
                let length = number(item) as usize;
                let left = self.body_end - self.position;
                let index = self.index;
                if length as u64 > left {
                    self.fail(corrupt(&format!("entry {index}")));
                } else {
                    self.expect(Step::Entry(length), || format!("the time of entry {index}"));
                }
            }
            Step::Entry(length) => {
                let (term, time) = item.split_at(length);
                if let Some(identity) = identity
                    && !is_term(term, identity.term_arity)
                {
                    self.fail(RestoreError::Corrupt(format!(
                        "entry {} is not a term of {} values",
                        self.index, identity.term_arity
                    )));
                    return;
                }
                visit(Visit::Entry(term, number(time) as i64));
                self.index += 1;
                self.next_entry();
            }
            Step::Checksum => {
                let crc = std::mem::take(&mut self.crc).finalize();
                if item != crc.to_le_bytes() {
                    self.fail_now(RestoreError::ChecksumMismatch);
                }
                self.step = Step::Done;
            }
            Step::Skip(_) | Step::Done => {}
        }
    }

    /// After the entry count: checks it and the identity, then reads the entries.
    fn entry_count(
        &mut self,
        count: u64,
        identity: Option<&Identity<'_>>,
        visit: &mut impl FnMut(Visit<'_>),
    ) {
        let left = self.body_end - self.position;
        // Bound what is reserved by what the bytes can hold, whatever the count claims.
        if count > left / MIN_ENTRY_LEN as u64 {
            self.fail(RestoreError::Corrupt(format!(
                "{count} entries cannot fit in {left} bytes"
            )));
            return;
        }
        if let Some(identity) = identity {
            if self.rule_id != identity.rule_id {
                let why = format!(
                    "snapshot of rule {}, this is rule {}",
                    self.rule_id, identity.rule_id
                );
                self.fail(RestoreError::Incompatible(why));
                return;
            }
            if self.term_signature != identity.term_signature {
                let why = format!(
                    "snapshot of terms {}, this profile uses {}",
                    self.term_signature, identity.term_signature
                );
                self.fail(RestoreError::Incompatible(why));
                return;
            }
        }
        self.count = count;
        visit(Visit::Count {
            entries: count as usize,
            term_bytes: (left - count * MIN_ENTRY_LEN as u64) as usize,
        });
        self.next_entry();
    }

    fn next_entry(&mut self) {
        if self.index < self.count {
            let index = self.index;
            self.expect(Step::EntryLength, || format!("entry {index}"));
            return;
        }
        match self.body_end - self.position {
            0 => self.step = Step::Checksum,
            left => self.fail(RestoreError::Corrupt(format!(
                "{left} bytes after the last entry"
            ))),
        }
    }

    /// Records an error in the body and skips to the checksum.
    fn fail(&mut self, error: RestoreError) {
        self.failure.get_or_insert(error);
        self.step = Step::Skip(self.body_end - self.position);
    }
}

fn corrupt(what: &str) -> RestoreError {
    RestoreError::Corrupt(format!("cannot read {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::TermKey;

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

    fn decode_in_pieces(bytes: &[u8], size: usize) -> Result<Contents, RestoreError> {
        let mut decoder = Decoder::new(bytes.len() as u64);
        let mut entries = Vec::new();
        for piece in bytes.chunks(size) {
            decoder.write(piece, Some(&IDENTITY), |visit| {
                if let Visit::Entry(term, time) = visit {
                    entries.push((Box::from(term), time));
                }
            })?;
        }
        let evictions = decoder.finish()?;
        Ok(Contents { evictions, entries })
    }

    #[test]
    fn pieces_of_any_size_decode_as_the_whole() {
        let (bytes, _) = sample();
        let mut damaged = vec![bytes.clone()];
        damaged.extend((0..bytes.len()).map(|length| bytes[..length].to_vec()));
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut copy = bytes.clone();
                copy[index] ^= 1 << bit;
                damaged.push(copy);
            }
        }
        for case in &damaged {
            let whole = decode(case, &IDENTITY);
            for size in [1, 2, 3, 5, 8, 13, 64] {
                assert_eq!(decode_in_pieces(case, size), whole, "{case:?} in {size}");
            }
        }
    }

    #[test]
    fn a_piece_past_the_announced_length_is_refused() {
        let (bytes, _) = sample();
        let mut decoder = Decoder::new(bytes.len() as u64 - 1);
        assert!(matches!(
            decoder.write(&bytes, Some(&IDENTITY), |_| {}),
            Err(RestoreError::Corrupt(_))
        ));
        let mut short = Decoder::new(bytes.len() as u64);
        let cut = &bytes[..bytes.len() - 1];
        short.write(cut, Some(&IDENTITY), |_| {}).expect("a prefix");
        assert_eq!(short.finish(), Err(RestoreError::Truncated));
    }
}
