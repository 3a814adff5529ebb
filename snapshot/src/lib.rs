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

pub mod journal;
pub mod term;
pub mod time;

use std::fmt;

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

/// How a refusal for corrupt content begins (followed by `: ` and the detail); a host that gets
/// the detail as text across the WIT words it the same way.
pub const CORRUPT: &str = "the snapshot is corrupt";
/// How a refusal of another rule's or profile's snapshot begins (followed by `: ` and the detail).
pub const INCOMPATIBLE: &str = "the snapshot does not fit this rule";

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
    Corrupt(Corruption),
    /// Another rule's snapshot, or other term fields.
    Incompatible(Incompatibility),
}

/// How a snapshot's content fails to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The header's body length cannot be a snapshot's.
    ImpossibleBodyLength(u64),
    /// Bytes follow the checksum.
    AfterChecksum(u64),
    /// More bytes were written than the length announced.
    PastAnnouncedLength(u64),
    /// The body ends before this item.
    Unreadable(Item),
    /// An entry count larger than the bytes left can hold.
    TooManyEntries {
        /// Entries the header claims.
        count: u64,
        /// Body bytes left for them.
        left: u64,
    },
    /// An entry's term is not an encoding of as many values as the rule's terms have.
    NotATerm {
        /// The entry's index.
        entry: u64,
        /// Values a term has.
        arity: usize,
    },
    /// Bytes between the last entry and the checksum.
    AfterLastEntry(u64),
    /// A piece or the end of a restore came with no restore begun.
    NotBegun,
}

/// A part of a snapshot's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// The rule id.
    RuleId,
    /// The term signature.
    TermSignature,
    /// The eviction count.
    Evictions,
    /// The entry count.
    EntryCount,
    /// The entry of this index.
    Entry(u64),
    /// The time of the entry of this index.
    EntryTime(u64),
}

/// Why a sound snapshot is not one this rule reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incompatibility {
    /// Written by another rule.
    Rule {
        /// The snapshot's rule id.
        snapshot: String,
        /// This rule's id.
        this: String,
    },
    /// Of other term fields (another profile).
    Terms {
        /// The snapshot's term signature.
        snapshot: String,
        /// This profile's term signature.
        this: String,
    },
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::BadMagic => f.write_str("not a newterms snapshot (wrong magic number)"),
            RestoreError::UnsupportedVersion(version) => {
                write!(
                    f,
                    "snapshot format version {version} is not one this rule reads"
                )
            }
            RestoreError::Truncated => f.write_str("the snapshot is truncated"),
            RestoreError::ChecksumMismatch => {
                f.write_str("the snapshot is damaged (checksum mismatch)")
            }
            RestoreError::Corrupt(why) => write!(f, "{CORRUPT}: {why}"),
            RestoreError::Incompatible(why) => write!(f, "{INCOMPATIBLE}: {why}"),
        }
    }
}

impl std::error::Error for RestoreError {}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::ImpossibleBodyLength(length) => {
                write!(f, "body length {length} is impossible")
            }
            Corruption::AfterChecksum(bytes) => write!(f, "{bytes} bytes after the checksum"),
            Corruption::PastAnnouncedLength(length) => {
                write!(f, "more than the {length} bytes announced")
            }
            Corruption::Unreadable(item) => write!(f, "cannot read {item}"),
            Corruption::TooManyEntries { count, left } => {
                write!(f, "{count} entries cannot fit in {left} bytes")
            }
            Corruption::NotATerm { entry, arity } => {
                write!(f, "entry {entry} is not a term of {arity} values")
            }
            Corruption::AfterLastEntry(bytes) => write!(f, "{bytes} bytes after the last entry"),
            Corruption::NotBegun => f.write_str("no restore was begun"),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::RuleId => f.write_str("the rule id"),
            Item::TermSignature => f.write_str("the term signature"),
            Item::Evictions => f.write_str("the eviction count"),
            Item::EntryCount => f.write_str("the entry count"),
            Item::Entry(index) => write!(f, "entry {index}"),
            Item::EntryTime(index) => write!(f, "the time of entry {index}"),
        }
    }
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incompatibility::Rule { snapshot, this } => {
                write!(f, "snapshot of rule {snapshot}, this is rule {this}")
            }
            Incompatibility::Terms { snapshot, this } => {
                write!(f, "snapshot of terms {snapshot}, this profile uses {this}")
            }
        }
    }
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
        rule_id: std::mem::take(&mut decoder.header.rule_id),
        term_signature: std::mem::take(&mut decoder.header.term_signature),
        evictions,
        entries,
    })
}

/// The header, read whole before any entry.
#[derive(Debug, Default)]
struct Header {
    rule_id: String,
    term_signature: String,
    evictions: u64,
    count: u64,
}

/// What reading the header so far gives.
enum HeaderRead {
    /// At least this many bytes of the header are needed in all.
    More(usize),
    /// The body does not hold the header (or its identity is not the one asked for); the body
    /// ends at the offset given.
    Bad(u64, RestoreError),
    /// The header, and where the body ends.
    Done(Header, u64),
}

/// Reads the header from its first bytes `bytes` of a snapshot of `length` bytes. `Err` is an
/// error that ends the reading at once (magic, version, lengths); errors in the body come as
/// [`HeaderRead::Bad`], reported once the checksum is known to match, as a whole-buffer check
/// would.
fn read_header(
    bytes: &[u8],
    length: u64,
    identity: Option<&Identity<'_>>,
) -> Result<HeaderRead, RestoreError> {
    use HeaderRead::{Bad, Done, More};
    if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
        return Err(RestoreError::BadMagic);
    }
    let Some(version) = bytes.get(MAGIC.len()..MAGIC.len() + 4) else {
        return Ok(More(MAGIC.len() + 4));
    };
    let version = number(version) as u32;
    if version != FORMAT_VERSION {
        return Err(RestoreError::UnsupportedVersion(version));
    }
    let Some(body_len) = bytes.get(MAGIC.len() + 4..HEADER_LEN) else {
        return Ok(More(HEADER_LEN));
    };
    let body_len = number(body_len);
    let expected = body_len
        .checked_add((HEADER_LEN + CHECKSUM_LEN) as u64)
        .filter(|&expected| usize::try_from(expected).is_ok())
        .ok_or(RestoreError::Corrupt(Corruption::ImpossibleBodyLength(
            body_len,
        )))?;
    if length < expected {
        return Err(RestoreError::Truncated);
    }
    if length > expected {
        return Err(RestoreError::Corrupt(Corruption::AfterChecksum(
            length - expected,
        )));
    }
    let body_end = expected - CHECKSUM_LEN as u64;

    // The variable part: each field is checked against the body before it is waited for.
    let mut fields = HeaderFields {
        bytes,
        at: HEADER_LEN,
        body_end,
    };
    let read = (|| {
        let rule_id = fields.text(Item::RuleId)?;
        let term_signature = fields.text(Item::TermSignature)?;
        let evictions = number(fields.field(8, Item::Evictions)?);
        let count = number(fields.field(8, Item::EntryCount)?);
        Ok(Header {
            rule_id,
            term_signature,
            evictions,
            count,
        })
    })();
    let at = fields.at;
    let header = match read {
        Ok(header) => header,
        Err(step) => return Ok(step),
    };
    let left = body_end - at as u64;
    // Bound what is reserved by what the bytes can hold, whatever the count claims.
    let refusal = if header.count > left / MIN_ENTRY_LEN as u64 {
        Some(RestoreError::Corrupt(Corruption::TooManyEntries {
            count: header.count,
            left,
        }))
    } else if let Some(identity) = identity
        && header.rule_id != identity.rule_id
    {
        Some(RestoreError::Incompatible(Incompatibility::Rule {
            snapshot: header.rule_id.clone(),
            this: identity.rule_id.to_owned(),
        }))
    } else if let Some(identity) = identity
        && header.term_signature != identity.term_signature
    {
        Some(RestoreError::Incompatible(Incompatibility::Terms {
            snapshot: header.term_signature.clone(),
            this: identity.term_signature.to_owned(),
        }))
    } else {
        None
    };
    Ok(match refusal {
        Some(error) => Bad(body_end, error),
        None => Done(header, body_end),
    })
}

/// The header's variable part, read field by field.
struct HeaderFields<'a> {
    bytes: &'a [u8],
    at: usize,
    body_end: u64,
}

impl<'a> HeaderFields<'a> {
    /// The next `size` bytes, `item` of the header.
    fn field(&mut self, size: usize, item: Item) -> Result<&'a [u8], HeaderRead> {
        if size as u64 > self.body_end - self.at as u64 {
            return Err(self.bad(item));
        }
        let end = self.at + size;
        let found = self.bytes.get(self.at..end).ok_or(HeaderRead::More(end))?;
        self.at = end;
        Ok(found)
    }

    /// A length-prefixed UTF-8 string.
    fn text(&mut self, item: Item) -> Result<String, HeaderRead> {
        let size = number(self.field(4, item)?) as usize;
        let found = self.field(size, item)?;
        std::str::from_utf8(found)
            .map(str::to_owned)
            .map_err(|_| self.bad(item))
    }

    fn bad(&self, item: Item) -> HeaderRead {
        HeaderRead::Bad(
            self.body_end,
            RestoreError::Corrupt(Corruption::Unreadable(item)),
        )
    }
}

/// A little-endian number of at most 8 bytes.
fn number(bytes: &[u8]) -> u64 {
    let mut buffer = [0; 8];
    let size = bytes.len().min(8);
    buffer[..size].copy_from_slice(&bytes[..size]);
    u64::from_le_bytes(buffer)
}

/// What a [`Decoder`] reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The header, gathered whole.
    Header,
    /// The entries, one at a time.
    Entries,
    /// Bytes up to the checksum, after an error in the body.
    Skip,
    /// The checksum.
    Checksum,
    /// All of it.
    Done,
}

/// Reads a snapshot given in pieces of any size: the header is gathered and read whole, then the
/// entries are read one by one (at most one entry is held at a time). Errors come in the order a
/// check of the whole buffer gives them: the header, then the length, then the checksum, then the
/// content.
#[derive(Debug)]
pub struct Decoder {
    /// The length announced: the bytes that will be written.
    length: u64,
    received: u64,
    /// Bytes taken from pieces so far (gathered into `gathered` or read through).
    taken: u64,
    /// Where the checksum starts, once the header's fixed part is read.
    body_end: u64,
    crc: crc32fast::Hasher,
    /// The header being gathered, the start of an entry that a piece ended in, or the checksum.
    gathered: Vec<u8>,
    stage: Stage,
    /// An error that ends the reading at once.
    fatal: Option<RestoreError>,
    /// The first error in the body.
    failure: Option<RestoreError>,
    header: Header,
    /// The next entry.
    index: u64,
}

impl Decoder {
    /// Starts reading a snapshot of `length` bytes.
    pub fn new(length: u64) -> Self {
        Self {
            length,
            received: 0,
            taken: 0,
            body_end: u64::MAX,
            crc: crc32fast::Hasher::new(),
            gathered: Vec::new(),
            stage: Stage::Header,
            fatal: None,
            failure: None,
            header: Header::default(),
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
            return Err(
                self.fail_now(RestoreError::Corrupt(Corruption::PastAnnouncedLength(
                    self.length,
                ))),
            );
        }
        self.received += piece.len() as u64;
        while !piece.is_empty() {
            let outcome = match self.stage {
                Stage::Header => self.header(&mut piece, identity, &mut visit),
                Stage::Entries => {
                    self.entries(&mut piece, identity, &mut visit);
                    Ok(())
                }
                Stage::Skip => {
                    let skipped = self.take(&mut piece, self.body_end - self.taken);
                    self.crc.update(skipped);
                    if self.taken == self.body_end {
                        self.stage = Stage::Checksum;
                    }
                    Ok(())
                }
                Stage::Checksum => self.checksum(&mut piece),
                // The announced length ends with the checksum: nothing is left to read.
                Stage::Done => break,
            };
            if let Err(error) = outcome {
                return Err(self.fail_now(error));
            }
        }
        Ok(())
    }

    /// Ends the reading: the eviction count if the whole snapshot was read and is sound.
    pub fn finish(&mut self) -> Result<u64, RestoreError> {
        if let Some(error) = &self.fatal {
            return Err(error.clone());
        }
        if self.stage != Stage::Done {
            return Err(if self.received > 0 {
                RestoreError::Truncated
            } else {
                RestoreError::BadMagic
            });
        }
        match &self.failure {
            Some(error) => Err(error.clone()),
            None => Ok(self.header.evictions),
        }
    }

    /// Takes at most `most` bytes off the front of `piece`.
    fn take<'p>(&mut self, piece: &mut &'p [u8], most: u64) -> &'p [u8] {
        let size = usize::try_from(most).unwrap_or(usize::MAX).min(piece.len());
        let (taken, rest) = piece.split_at(size);
        *piece = rest;
        self.taken += size as u64;
        taken
    }

    /// Gathers the header until it reads whole, then moves on to the entries.
    fn header(
        &mut self,
        piece: &mut &[u8],
        identity: Option<&Identity<'_>>,
        visit: &mut impl FnMut(Visit<'_>),
    ) -> Result<(), RestoreError> {
        // Reading the gathered bytes again as more arrive is cheap: the header is small, and
        // every field's length is checked against the body before its bytes are waited for.
        loop {
            match read_header(&self.gathered, self.length, identity)? {
                HeaderRead::More(need) => {
                    if piece.is_empty() {
                        return Ok(());
                    }
                    let taken = self.take(piece, (need - self.gathered.len()) as u64);
                    self.crc.update(taken);
                    self.gathered.extend_from_slice(taken);
                }
                HeaderRead::Bad(body_end, error) => {
                    self.body_end = body_end;
                    self.fail(error);
                    return Ok(());
                }
                HeaderRead::Done(header, body_end) => {
                    self.body_end = body_end;
                    self.gathered.clear();
                    self.header = header;
                    let left = self.body_end - self.taken;
                    visit(Visit::Count {
                        entries: self.header.count as usize,
                        term_bytes: (left - self.header.count * MIN_ENTRY_LEN as u64) as usize,
                    });
                    self.next_entry();
                    return Ok(());
                }
            }
        }
    }

    /// Reads entries: whole ones straight from the piece, one that a piece ends in gathered.
    fn entries(
        &mut self,
        piece: &mut &[u8],
        identity: Option<&Identity<'_>>,
        visit: &mut impl FnMut(Visit<'_>),
    ) {
        while self.stage == Stage::Entries && !piece.is_empty() {
            let known = if self.gathered.is_empty() {
                *piece
            } else {
                &self.gathered
            };
            let size = match self.entry_size(known) {
                Ok(size) => size,
                Err(error) => return self.fail(error),
            };
            if self.gathered.is_empty() && piece.len() >= size {
                let entry = self.take(piece, size as u64);
                self.crc.update(entry);
                self.entry(entry, identity, visit);
                continue;
            }
            let taken = self.take(piece, (size - self.gathered.len()) as u64);
            self.crc.update(taken);
            self.gathered.extend_from_slice(taken);
            if self.gathered.len() == size && size > 4 {
                let entry = std::mem::take(&mut self.gathered);
                self.entry(&entry, identity, visit);
                // Keep the allocation for the next entry that a piece ends in.
                self.gathered = entry;
                self.gathered.clear();
            }
        }
    }

    /// The size of the entry whose first bytes are `known`: 4 while its length is not known yet.
    fn entry_size(&self, known: &[u8]) -> Result<usize, RestoreError> {
        let Some(length) = known.get(..4) else {
            return Ok(4);
        };
        let length = number(length);
        // The body left after the entry's length.
        let start = self.taken - self.gathered.len() as u64;
        let left = self.body_end - start - 4;
        let index = self.index;
        if length > left {
            return Err(RestoreError::Corrupt(Corruption::Unreadable(Item::Entry(
                index,
            ))));
        }
        if length + 8 > left {
            return Err(RestoreError::Corrupt(Corruption::Unreadable(
                Item::EntryTime(index),
            )));
        }
        Ok(4 + length as usize + 8)
    }

    /// A whole entry.
    fn entry(
        &mut self,
        entry: &[u8],
        identity: Option<&Identity<'_>>,
        visit: &mut impl FnMut(Visit<'_>),
    ) {
        let (term, time) = entry[4..].split_at(entry.len() - 4 - 8);
        if let Some(identity) = identity
            && !is_term(term, identity.term_arity)
        {
            return self.fail(RestoreError::Corrupt(Corruption::NotATerm {
                entry: self.index,
                arity: identity.term_arity,
            }));
        }
        visit(Visit::Entry(term, number(time) as i64));
        self.index += 1;
        self.next_entry();
    }

    /// After the header or an entry: the next entry if the body holds its length, else the
    /// checksum if the body ends here.
    fn next_entry(&mut self) {
        let left = self.body_end - self.taken;
        if self.index < self.header.count {
            if left < 4 {
                return self.fail(RestoreError::Corrupt(Corruption::Unreadable(Item::Entry(
                    self.index,
                ))));
            }
            self.stage = Stage::Entries;
        } else if left == 0 {
            self.stage = Stage::Checksum;
        } else {
            self.fail(RestoreError::Corrupt(Corruption::AfterLastEntry(left)));
        }
    }

    /// Gathers the checksum and compares it.
    fn checksum(&mut self, piece: &mut &[u8]) -> Result<(), RestoreError> {
        let taken = self.take(piece, (CHECKSUM_LEN - self.gathered.len()) as u64);
        self.gathered.extend_from_slice(taken);
        if self.gathered.len() < CHECKSUM_LEN {
            return Ok(());
        }
        self.stage = Stage::Done;
        let crc = std::mem::take(&mut self.crc).finalize();
        if self.gathered != crc.to_le_bytes() {
            return Err(RestoreError::ChecksumMismatch);
        }
        Ok(())
    }

    fn fail_now(&mut self, error: RestoreError) -> RestoreError {
        self.fatal = Some(error.clone());
        error
    }

    /// Records an error in the body and skips to the checksum.
    fn fail(&mut self, error: RestoreError) {
        self.failure.get_or_insert(error);
        self.gathered.clear();
        self.stage = if self.taken == self.body_end {
            Stage::Checksum
        } else {
            Stage::Skip
        };
    }
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

    #[test]
    fn typed_errors_say_what_is_wrong() {
        let (bytes, _) = sample();
        let mut short = bytes.clone();
        // An entry count of one more than the body holds, with a good checksum: the typed error.
        let count_at = HEADER_LEN + 4 + 4 + 4 + 3 + 8;
        short[count_at..count_at + 8].copy_from_slice(&100_u64.to_le_bytes());
        let end = short.len() - CHECKSUM_LEN;
        let crc = crc32fast::hash(&short[..end]);
        short[end..].copy_from_slice(&crc.to_le_bytes());
        let error = decode(&short, &IDENTITY).expect_err("too many");
        assert!(matches!(
            error,
            RestoreError::Corrupt(Corruption::TooManyEntries { count: 100, .. })
        ));
        assert_eq!(
            Corruption::Unreadable(Item::EntryTime(3)).to_string(),
            "cannot read the time of entry 3"
        );
        let other = Identity {
            rule_id: "other",
            ..IDENTITY
        };
        assert_eq!(
            decode(&bytes, &other),
            Err(RestoreError::Incompatible(Incompatibility::Rule {
                snapshot: "rule".into(),
                this: "other".into()
            }))
        );
    }
}
