//! Reading a raw CloudTrail record without building a JSON tree: one validating pass over the text
//! that keeps only the fields the rule reads, as borrowed string slices.
//!
//! It handles the plain case and nothing else. The text must have no control byte, numbers without
//! exponents, nesting below 100 levels, and the fields the rule reads must be strings without
//! escapes, `null` or absent; the record must be raw CloudTrail (one of its top-level keys), not an
//! ECS document. Escapes may stand in the values it skips (a policy document in
//! `requestParameters`, say): they are validated as the parser does, and a key or a kept string
//! holding one is left to the parser. Whenever any of that does not hold, or the scan finds
//! anything it does not fully understand, the answer is `None` (or, for one field, "cannot tell")
//! and the caller runs the full parser: this module may decline any record, but what it does answer
//! must be exactly what full evaluation would find. Duplicate keys behave as in `serde_json` (the
//! last one wins).

use crate::bytes;
use crate::cloudtrail::{self, Derivation, Mapping, RawField};
use crate::definition::QueryFields;
use crate::lanes::{Lanes, WIDTH};
use crate::prefilter::{OddLanes, Oddities};
use crate::sparse::{Place, Reach, SparseFields, overlap};

/// A field of the record as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slot<'a> {
    /// Not in the record (or `null` / `""`, which the ingest pipeline drops).
    #[default]
    Absent,
    /// A non-empty string.
    Text(&'a str),
    /// Anything else: only full evaluation knows what the rule makes of it.
    Other,
}

/// The fields of a raw CloudTrail record that the rules read (the built-in rule's, and those of a
/// rule pack's CloudTrail rules that the mapping copies as they are).
#[derive(Debug, Default, Clone, Copy)]
pub struct RawFields<'a> {
    /// Whether a top-level key marks the record as raw CloudTrail.
    pub raw: bool,
    /// Whether the record holds a backslash (in the values the scan skipped or kept as text).
    escaped: bool,
    event_source: Slot<'a>,
    event_name: Slot<'a>,
    event_time: Slot<'a>,
    event_id: Slot<'a>,
    aws_region: Slot<'a>,
    error_code: Slot<'a>,
    error_message: Slot<'a>,
    recipient_account_id: Slot<'a>,
    source_ip_address: Slot<'a>,
    user_agent: Slot<'a>,
    identity: Identity<'a>,
    /// The text of `requestParameters`, `responseElements`, `additionalEventData` and `resources`
    /// (any JSON value, validated), when the record has the key.
    request_parameters: Option<&'a [u8]>,
    response_elements: Option<&'a [u8]>,
    additional_event_data: Option<&'a [u8]>,
    resources: Option<&'a [u8]>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Identity<'a> {
    invoked_by: Slot<'a>,
    arn: Slot<'a>,
    kind: Slot<'a>,
    access_key_id: Slot<'a>,
    user_name: Slot<'a>,
    account_id: Slot<'a>,
    principal_id: Slot<'a>,
    issuer_user_name: Slot<'a>,
    issuer_arn: Slot<'a>,
}

impl<'a> RawFields<'a> {
    /// The value of the ECS field `field` as the raw mapping ([`cloudtrail::MAPPING`]) would fill
    /// it: `None` when this module does not map that field (or cannot tell), `Some(Absent)` for no
    /// value.
    pub fn ecs(&self, field: &str) -> Option<Slot<'a>> {
        self.derive(cloudtrail::mapping(field)?)
    }

    /// The value of the ECS field of `row` of the mapping, as [`RawFields::ecs`]: for callers that
    /// look the row up once rather than per record.
    #[inline(always)]
    pub fn derive(&self, row: &Mapping) -> Option<Slot<'a>> {
        let slot = match row.derivation {
            Derivation::First(sources) => {
                let mut found = Slot::Absent;
                for &source in sources {
                    found = self.raw(source)?;
                    if found != Slot::Absent {
                        break;
                    }
                }
                found
            }
            Derivation::Outcome(sources) => {
                let answer = match self.console_login()? {
                    true => self.console_login_answer()?,
                    false => None,
                };
                match answer {
                    Some(answer) => answer,
                    None => {
                        let mut outcome = Slot::Text("success");
                        for &source in sources {
                            match self.raw(source)? {
                                Slot::Absent => {}
                                Slot::Text(_) => outcome = Slot::Text("failure"),
                                Slot::Other => return None,
                            }
                        }
                        outcome
                    }
                }
            }
            Derivation::Constant(value) => Slot::Text(value),
            // The pipeline keeps the raw string when it is an address (as `cloudtrail::to_ecs`).
            Derivation::IpAddress(source) => match self.raw(source)? {
                Slot::Text(address) if address.parse::<std::net::IpAddr>().is_ok() => {
                    Slot::Text(address)
                }
                Slot::Text(_) | Slot::Absent => Slot::Absent,
                Slot::Other => return None,
            },
            // A console sign-in's flag: `false` for `No`, `true` for any other value.
            Derivation::ConsoleLoginFlag(within, key) => {
                if !self.console_login()? {
                    return Some(Slot::Absent);
                }
                match self.member(within, key)? {
                    Member::Absent => Slot::Absent,
                    Member::String("No") => Slot::Text("false"),
                    Member::String(_) | Member::Boolean(_) => Slot::Text("true"),
                }
            }
            // Rewritten values: only full evaluation makes them.
            Derivation::JavaString(_)
            | Derivation::Timestamp(_)
            | Derivation::Flattened(_)
            | Derivation::ResourceList(_) => return None,
        };
        (slot != Slot::Other).then_some(slot)
    }

    /// A raw field as the scan found it; `None` for fields the scan does not keep.
    #[inline(always)]
    pub fn raw(&self, field: RawField) -> Option<Slot<'a>> {
        Some(match field {
            RawField::EventSource => self.event_source,
            RawField::EventName => self.event_name,
            RawField::EventTime => self.event_time,
            RawField::EventId => self.event_id,
            RawField::AwsRegion => self.aws_region,
            RawField::SourceIpAddress => self.source_ip_address,
            RawField::UserAgent => self.user_agent,
            RawField::IdentityType => self.identity.kind,
            RawField::IdentityAccessKeyId => self.identity.access_key_id,
            RawField::ErrorCode => self.error_code,
            RawField::ErrorMessage => self.error_message,
            RawField::RecipientAccountId => self.recipient_account_id,
            RawField::IdentityInvokedBy => self.identity.invoked_by,
            RawField::IdentityArn => self.identity.arn,
            RawField::IdentityUserName => self.identity.user_name,
            RawField::IdentityAccountId => self.identity.account_id,
            RawField::IssuerUserName => self.identity.issuer_user_name,
            RawField::IdentityPrincipalId => self.identity.principal_id,
            RawField::IssuerArn => self.identity.issuer_arn,
            _ => return None,
        })
    }

    /// The value of a member (`name`, without a dot) of the flattened copy of the raw object
    /// `field` (the field of a [`Derivation::Flattened`] row, followed by `.name`), as
    /// [`cloudtrail::to_ecs`] and the query would find it; `None` when this module does not tell
    /// (an object the scan does not keep, or see [`flattened_member`]).
    pub fn flattened(&self, field: RawField, name: &str) -> Option<Slot<'a>> {
        self.member(field, name).map(Member::slot)
    }

    /// The text the scan kept (and validated) of the raw value `field` (`Some(None)`: the record
    /// has no such key); `None` when the scan does not keep it.
    fn kept(&self, field: RawField) -> Option<Option<Kept<'a>>> {
        let text = match field {
            RawField::RequestParameters => self.request_parameters,
            RawField::ResponseElements => self.response_elements,
            RawField::AdditionalEventData => self.additional_event_data,
            RawField::Resources => self.resources,
            _ => return None,
        };
        Some(text.map(|text| Kept {
            text,
            escapes: self.escaped,
        }))
    }

    /// Member `name` of the raw object `field`, when the scan keeps that object's text.
    fn member(&self, field: RawField, name: &str) -> Option<Member<'a>> {
        match self.kept(field)? {
            Some(kept) => flattened_member(kept, name),
            None => Some(Member::Absent),
        }
    }

    /// The value of member `name` (without a dot) of the resources of the raw list `field` (the
    /// field of a [`Derivation::ResourceList`] row, followed by `.name`), as [`cloudtrail::to_ecs`]
    /// and the query would find it. It tells for a list of one object, whose member reads as a
    /// flattened one does (see [`flattened_member`]) under the pipeline's names (`arn` for `ARN`,
    /// `account_id` for `accountId`); `None` for anything else, and for a name the renaming could
    /// collide with.
    pub fn resource(&self, field: RawField, name: &str) -> Option<Slot<'a>> {
        let Some(kept) = self.kept(field)? else {
            return Some(Slot::Absent);
        };
        if kept.text == b"null" {
            return Some(Slot::Absent);
        }
        let item = only_object(kept)?;
        let written = match name {
            "arn" => "ARN",
            "account_id" => "accountId",
            "ARN" | "accountId" => return None,
            other => other,
        };
        if written != name && flattened_member(item, name)? != Member::Absent {
            return None;
        }
        flattened_member(item, written).map(Member::slot)
    }

    /// Whether the record is a console sign-in, whose outcome and flags come from its own data
    /// (as `cloudtrail::to_ecs` tells); `None` for an `eventName` that is not a string.
    fn console_login(&self) -> Option<bool> {
        match self.event_name {
            Slot::Text(name) => Some(name == "ConsoleLogin"),
            Slot::Absent | Slot::Other => None,
        }
    }

    /// A console sign-in's own outcome, as `cloudtrail::to_ecs` reads it from the flattened
    /// `responseElements.ConsoleLogin` (a string, lowercased): `Some(None)` when it has none (the
    /// errors then tell); `None` when this module does not tell, which includes an answer whose
    /// lowercase is not itself or a plain `Success` / `Failure`.
    fn console_login_answer(&self) -> Option<Option<Slot<'a>>> {
        match self.member(RawField::ResponseElements, "ConsoleLogin")? {
            Member::String("Success") => Some(Some(Slot::Text("success"))),
            Member::String("Failure") => Some(Some(Slot::Text("failure"))),
            Member::String(answer)
                if !answer
                    .bytes()
                    .any(|byte| byte.is_ascii_uppercase() || !byte.is_ascii()) =>
            {
                Some(Some(Slot::Text(answer)))
            }
            Member::String(_) => None,
            Member::Absent | Member::Boolean(_) => Some(None),
        }
    }

    /// `eventTime` as the scan found it.
    pub fn event_time(&self) -> Slot<'a> {
        self.event_time
    }
}

impl QueryFields for RawFields<'_> {
    fn any_value(&self, field: &str, test: impl Fn(&str) -> bool) -> Option<bool> {
        Found(self.ecs(field)).any_value(field, test)
    }

    fn exists(&self, field: &str) -> Option<bool> {
        Found(self.ecs(field)).exists(field)
    }
}

/// One field's value as the fast path found it (`None`: it cannot tell), as the query reads it.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a>(pub Option<Slot<'a>>);

impl QueryFields for Found<'_> {
    #[inline]
    fn any_value(&self, _: &str, test: impl Fn(&str) -> bool) -> Option<bool> {
        Some(match self.0? {
            Slot::Text(found) => test(found),
            Slot::Absent | Slot::Other => false,
        })
    }

    #[inline]
    fn exists(&self, _: &str) -> Option<bool> {
        Some(matches!(self.0?, Slot::Text(_)))
    }
}

/// Scans `text` (see the module documentation for what it accepts): the fields the rule reads when
/// `text` is a valid JSON object this module fully understands, `None` when it is not a case this
/// module decides (use the full parser).
pub fn scan(text: &str) -> Option<RawFields<'_>> {
    scan_bytes(text.as_bytes(), &mut QuoteIndex::default(), false)
}

/// [`scan`] of a record given as bytes. A kept string that is not UTF-8 is declined; with
/// `ascii_only`, so is any record with a byte above 0x7f (for a caller that has not checked the
/// rest of the record's UTF-8). `quotes` is scratch space, kept between records so that indexing one
/// allocates nothing.
pub fn scan_bytes<'a>(
    bytes: &'a [u8],
    quotes: &mut QuoteIndex,
    ascii_only: bool,
) -> Option<RawFields<'a>> {
    let indexed = index(bytes, quotes)?;
    scan_indexed(bytes, quotes, indexed, ascii_only)
}

/// [`scan_bytes`] of a record that `quotes` already indexes (`indexed`, from [`index_line`]).
pub fn scan_indexed<'a>(
    bytes: &'a [u8],
    quotes: &QuoteIndex,
    indexed: Indexed<'a>,
    ascii_only: bool,
) -> Option<RawFields<'a>> {
    // Kept strings are slices of the record's text when it is ASCII; otherwise each is checked.
    if ascii_only && indexed.text.is_none() {
        return None;
    }
    if indexed.escaped {
        walk::<true>(bytes, indexed.text, quotes)
    } else {
        walk::<false>(bytes, indexed.text, quotes)
    }
}

/// What indexing a record's quotes told of it: whether they hold an escape (each validated, and
/// the quotes they escape taken out of the index), and the record as text when it is ASCII. Made
/// only here, by the pass that builds a [`QuoteIndex`] for that record.
#[derive(Clone, Copy)]
pub struct Indexed<'b> {
    escaped: bool,
    text: Option<&'b str>,
}

/// Indexes the quotes of `bytes`; `None` for a control byte or an escape this module leaves to the
/// parser.
fn index<'b>(bytes: &'b [u8], quotes: &mut QuoteIndex) -> Option<Indexed<'b>> {
    let (odd, text) = quotes.build_text(bytes);
    indexed(bytes, odd, text, quotes)
}

/// The line at the start of `buffer` (up to its `\n`, or the buffer's end): its length, and the
/// line indexed as [`index`] would, in the pass that found where it ends, when it holds no other
/// control byte (a `\r`, a tab) and no escape this module leaves to the parser. A buffer of lines
/// is then read once by the vector pass rather than twice (a search for line ends before it cost
/// ~3.5 % of a rule pack's instructions).
pub fn index_line<'b>(buffer: &'b [u8], quotes: &mut QuoteIndex) -> (usize, Option<Indexed<'b>>) {
    let Some((end, odd)) = quotes.build_line(buffer) else {
        return (memchr::memchr(b'\n', buffer).unwrap_or(buffer.len()), None);
    };
    let line = buffer.get(..end).unwrap_or_default();
    (end, indexed(line, odd, ascii_text(line, odd), quotes))
}

/// `bytes` as text when the index's pass over them (`odd`) found no byte above 0x7F: ASCII is
/// UTF-8, so that pass is the record's UTF-8 check, where another pass over it cost ~3 % of a
/// pack's time in WebAssembly.
#[inline(always)]
fn ascii_text(bytes: &[u8], odd: Oddities) -> Option<&str> {
    if odd.high {
        return None;
    }
    debug_assert!(bytes.is_ascii());
    // SAFETY: the pass found no byte above 0x7F (`build_text_is_the_ascii_check` and
    // `lines_are_indexed_as_records_are` hold both passes to `is_ascii`), and ASCII is valid UTF-8.
    #[allow(unsafe_code)]
    let text = unsafe { std::str::from_utf8_unchecked(bytes) };
    Some(text)
}

/// What [`index`] and [`index_line`] tell of a record once its quotes are indexed.
fn indexed<'b>(
    bytes: &'b [u8],
    odd: Oddities,
    text: Option<&'b str>,
    quotes: &mut QuoteIndex,
) -> Option<Indexed<'b>> {
    // Whitespace between tokens is fine, but a tab or newline inside a string is not: with a
    // control byte anywhere, leave the record to the parser.
    if odd.control {
        return None;
    }
    let escaped = odd.backslash && {
        quotes.unescape(bytes)?;
        true
    };
    Some(Indexed { escaped, text })
}

/// The values of the fields of `reach` in the ECS document `text`, validated as the scan validates
/// a raw record (see [`crate::sparse`]): what [`crate::fields`] finds in the whole document. `None`
/// when the text is not a JSON object this module fully understands, when it is raw CloudTrail,
/// when two keys of one object could both hold a field's values (duplicates, `a` beside `a.b`),
/// and when a value is one it does not keep as written: a string with an escape, a number other
/// than a plain non-negative integer (whose text is how `serde_json` writes it back).
/// `indexed`: `quotes` already indexes `text` ([`index_line`]).
pub fn scan_sparse<'a>(
    text: &'a str,
    quotes: &mut QuoteIndex,
    indexed: Option<Indexed<'a>>,
    reach: &'a Reach,
    values: Vec<(u32, &'static str)>,
) -> Option<SparseFields<'a>> {
    let bytes = text.as_bytes();
    let Indexed { escaped, .. } = match indexed {
        Some(indexed) => indexed,
        None => index(bytes, quotes)?,
    };
    // The scratch of the last document, emptied, for this one's values.
    let mut fields = SparseFields::new(reach, values);
    let read = if escaped {
        sparse_walk::<true>(text, quotes, reach, &mut fields)
    } else {
        sparse_walk::<false>(text, quotes, reach, &mut fields)
    };
    read.map(|()| fields)
}

fn sparse_walk<'a, const ESCAPED: bool>(
    text: &'a str,
    quotes: &QuoteIndex,
    reach: &Reach,
    fields: &mut SparseFields<'a>,
) -> Option<()> {
    let bytes = text.as_bytes();
    let mut scanner = Scanner::<ESCAPED> {
        bytes,
        text: Some(text),
        quotes,
        at: 0,
        depth: 0,
    };
    scanner.ws();
    if bytes.get(scanner.at) != Some(&b'{') {
        return None;
    }
    scanner.sparse(reach, Place::TOP, fields)?;
    scanner.ws();
    (scanner.at == bytes.len()).then_some(())
}

/// [`scan`] of text already known to be UTF-8 with no backslash and no byte below 0x20 (the
/// prefilter's survey tells), whose pass over the bytes then only looks for quotes.
pub fn scan_plain<'a>(bytes: &'a [u8], quotes: &mut QuoteIndex) -> Option<RawFields<'a>> {
    // Kept strings are slices of the record's text rather than each checked on its own: ASCII
    // text is known from the index's pass, anything else is checked in one more.
    let (_, ascii) = quotes.build_text(bytes);
    let text = ascii.or_else(|| simdutf8::basic::from_utf8(bytes).ok());
    walk::<false>(bytes, text, quotes)
}

/// The scan proper, once `quotes` indexes the strings of `bytes`; `ESCAPED`: they hold a backslash
/// (a parameter of the type, so that plain records pay nothing for escapes).
///
/// Whitespace between tokens is looked for as a record's writer is likely to have spaced them.
/// CloudTrail writes its records without whitespace, so a record is first read without looking for
/// any ([`Spacing::NONE`]), which spared ~10 % of the built-in rule's instructions per record on
/// such records; a record whose first member is spaced (`": "`, as many serialisers write, one
/// space after each `:` and `,`) is first read passing at most one space at each place
/// ([`Spacing::ONE`]). Both readings accept fewer records than the full one and read those as it
/// would; where one stops at a space, the record is read again the full way.
#[inline(always)]
fn walk<'a, const ESCAPED: bool>(
    bytes: &'a [u8],
    text: Option<&'a str>,
    quotes: &QuoteIndex,
) -> Option<RawFields<'a>> {
    // Spaced when a space follows the first key's colon (`{"key":`: its closing quote is the
    // first quote from the third byte on).
    let spaced = quotes
        .next(2)
        .and_then(|end| bytes.get(end + 2))
        .is_none_or(|&byte| byte == b' ');
    let first = if spaced {
        walk_as::<ESCAPED, { Spacing::ONE }>(bytes, text, quotes)
    } else {
        walk_as::<ESCAPED, { Spacing::NONE }>(bytes, text, quotes)
    };
    match first {
        Ok(fields) => return Some(fields),
        // Up to where it met more spaces than it passes, the other reading reads the same: a
        // stop anywhere else is where it would stop too.
        Err(stop) if bytes.get(stop) != Some(&b' ') => return None,
        Err(_) => {}
    }
    walk_as::<ESCAPED, { Spacing::ANY }>(bytes, text, quotes).ok()
}

/// How many spaces a reading passes between two tokens (`Scanner::ws`); a space beyond them is
/// where it stops. Constants of a type rather than an enum: a const parameter cannot be an enum in
/// stable Rust.
struct Spacing;

impl Spacing {
    /// None: the compact reading.
    const NONE: u8 = 0;
    /// At most one at each place.
    const ONE: u8 = 1;
    /// Any number: the full reading.
    const ANY: u8 = 2;
}

/// [`walk`], passing spaces as `SPACING` says; where the scan stopped when it declines.
/// Not inlined: the readings in one function made the usual one slower.
#[inline(never)]
fn walk_as<'a, const ESCAPED: bool, const SPACING: u8>(
    bytes: &'a [u8],
    text: Option<&'a str>,
    quotes: &QuoteIndex,
) -> Result<RawFields<'a>, usize> {
    let mut scanner = Scanner::<ESCAPED, SPACING> {
        bytes,
        text,
        quotes,
        at: 0,
        depth: 0,
    };
    let mut fields = RawFields {
        escaped: ESCAPED,
        ..RawFields::default()
    };
    let parsed = (|| {
        scanner.ws();
        scanner.top(&mut fields)?;
        scanner.ws();
        (scanner.at == bytes.len()).then_some(())
    })();
    parsed.map(|()| fields).ok_or(scanner.at)
}

const MAX_DEPTH: usize = 100;

/// The text of a raw value the scan kept, validated.
#[derive(Debug, Clone, Copy)]
struct Kept<'a> {
    text: &'a [u8],
    /// Whether it may hold escapes (the record holds a backslash somewhere).
    escapes: bool,
}

impl<'a> Kept<'a> {
    /// Where the string that starts after an opening quote in `text` ends: its closing quote.
    /// An escape's backslash and the byte after it are passed over (the scan validated every
    /// escape, and none holds a quote but `\"`).
    fn string_end(self, text: &[u8]) -> Option<usize> {
        if !self.escapes {
            return text.iter().position(|&byte| byte == b'"');
        }
        let mut at = 0;
        loop {
            match *text.get(at)? {
                b'"' => return Some(at),
                b'\\' => at += 2,
                _ => at += 1,
            }
        }
    }
}

/// A member of a flattened object as [`flattened_member`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member<'a> {
    /// Missing, `null` or `""` (blanks the pipeline drops).
    Absent,
    /// A non-empty string.
    String(&'a str),
    /// `true` or `false`.
    Boolean(bool),
}

impl<'a> Member<'a> {
    /// The member as the query reads a keyword.
    fn slot(self) -> Slot<'a> {
        match self {
            Member::Absent => Slot::Absent,
            Member::String(text) => Slot::Text(text),
            Member::Boolean(flag) => Slot::Text(if flag { "true" } else { "false" }),
        }
    }
}

/// Member `member` of the flattened copy of a raw object (`kept`, text the scan validated, with no
/// control byte), as the ingest pipeline's `flattened` field holds it (`null`: no member). `None`
/// for everything it does not decide: a value that is not an object or `null`; a member that is a
/// number, an object or an array; a key with an escape (it may spell any name) and the member's own
/// string with one (only the parser decodes it), while escapes in the other members' values are
/// passed over; and text whose Java rendering may reach the copy's length limit. That rendering is
/// at most the text's length plus one per comma (`, ` for `,`, while `=` for `":"`, unquoted strings
/// and decoded escapes only shorten it, and dropped blanks and characters counted instead of bytes
/// too), so below the limit by that bound the copy is kept. Duplicate members: the last one, as in
/// `serde_json`.
fn flattened_member<'a>(kept: Kept<'a>, member: &str) -> Option<Member<'a>> {
    let value = kept.text;
    if value == b"null" {
        return Some(Member::Absent);
    }
    let body = value.strip_prefix(b"{")?.strip_suffix(b"}")?;
    // Commas are counted only when they could matter: there are fewer of them than bytes.
    if value.len() * 2 >= cloudtrail::FLATTENED_LIMIT {
        let commas = body.iter().filter(|&&byte| byte == b',').count();
        if value.len() + commas >= cloudtrail::FLATTENED_LIMIT {
            return None;
        }
    }
    let wanted = member.as_bytes();
    let mut found = Member::Absent;
    let mut rest = body;
    // A string's text as written (escapes undecoded) and what follows it.
    let string = |text: &'a [u8]| -> Option<(&'a [u8], &'a [u8])> {
        let text = spaces_passed(text).strip_prefix(b"\"")?;
        let end = kept.string_end(text)?;
        Some((text.get(..end)?, text.get(end + 1..)?))
    };
    let escaped = |text: &[u8]| kept.escapes && memchr::memchr(b'\\', text).is_some();
    loop {
        rest = spaces_passed(rest);
        if rest.is_empty() {
            return Some(found);
        }
        let (key, after_key) = string(rest)?;
        if escaped(key) {
            return None;
        }
        let after_colon = spaces_passed(after_key).strip_prefix(b":")?;
        let value_text = spaces_passed(after_colon);
        // Where the member's value ends: at the `,` or the end of the body at depth 0.
        let mut depth = 0_usize;
        let mut at = 0;
        while let Some(&byte) = value_text.get(at) {
            match byte {
                b'"' => {
                    let (_, after) = string(value_text.get(at..)?)?;
                    at = value_text.len() - after.len();
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.checked_sub(1)?,
                b',' if depth == 0 => break,
                _ => {}
            }
            at += 1;
        }
        let (member_value, next) = value_text.split_at(at);
        if bytes::equal(key, wanted) {
            found = match member_value.trim_ascii_end() {
                b"null" | b"\"\"" => Member::Absent,
                b"true" => Member::Boolean(true),
                b"false" => Member::Boolean(false),
                text if text.first() == Some(&b'"') => {
                    let (inner, after) = string(text)?;
                    if !after.is_empty() || escaped(inner) {
                        return None;
                    }
                    Member::String(std::str::from_utf8(inner).ok()?)
                }
                _ => return None,
            };
        }
        rest = next.strip_prefix(b",").unwrap_or(next);
    }
}

/// `text` past its leading JSON whitespace. The usual one space, or none, is passed without a
/// loop: in the sandbox each loop entered costs a check of its deadline.
#[inline(always)]
fn spaces_passed(text: &[u8]) -> &[u8] {
    let text = text.strip_prefix(b" ").unwrap_or(text);
    match text.first() {
        Some(byte) if byte.is_ascii_whitespace() => text.trim_ascii_start(),
        _ => text,
    }
}

/// The only item of a JSON array (validated) when it is an object; `None` for anything else.
fn only_object(list: Kept<'_>) -> Option<Kept<'_>> {
    let item = list
        .text
        .strip_prefix(b"[")?
        .strip_suffix(b"]")?
        .trim_ascii();
    if item.first() != Some(&b'{') {
        return None;
    }
    // One object: its depth comes back to 0 only at its last byte.
    let mut depth = 0_usize;
    let mut at = 0;
    while let Some(&byte) = item.get(at) {
        match byte {
            b'"' => at += 1 + list.string_end(item.get(at + 1..)?)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 && at + 1 != item.len() {
                    return None;
                }
            }
            _ => {}
        }
        at += 1;
    }
    Some(Kept { text: item, ..list })
}

/// Where a record's quotes are, one bit a byte, found in one vector pass: the end of a string is
/// then a bit search rather than a byte search (a record has dozens of short strings). Quotes that
/// escapes make part of a string are taken out ([`QuoteIndex::unescape`]), so that every quote left
/// opens or closes one.
#[derive(Debug, Default)]
pub struct QuoteIndex {
    words: Vec<u64>,
}

impl QuoteIndex {
    /// Indexes the quotes of `bytes`, and tells what else is in them.
    fn build(&mut self, bytes: &[u8]) -> Oddities {
        let quote = Lanes::splat(b'"');
        let mut odd = OddLanes::default();
        let mut mask = |block: &[u8; 64]| quote_word(block, quote, &mut odd);
        let (blocks, rest) = bytes.as_chunks::<64>();
        // A word per block, written in place: a push per block checked the capacity, whose
        // call to grow made the block's vectors go through the stack.
        self.words.clear();
        self.words.resize(blocks.len() + 1, 0);
        for (word, block) in self.words.iter_mut().zip(blocks) {
            *word = mask(block);
        }
        // The last bytes padded with spaces (neither quotes nor odd) to a whole block, so that
        // they go through the same vector code rather than a loop of their own.
        let mut last = [b' '; 64];
        if let Some(tail) = last.get_mut(..rest.len()) {
            tail.copy_from_slice(rest);
        }
        if let Some(word) = self.words.last_mut() {
            *word = mask(&last);
        }
        odd.finish(&[])
    }

    /// [`QuoteIndex::build`] of the line at the start of `buffer`, in the same pass that finds where
    /// the line ends: its length (up to its `\n`, or the buffer's end) and what else it holds;
    /// `None` when it holds another control byte, and then the index means nothing.
    fn build_line(&mut self, buffer: &[u8]) -> Option<(usize, Oddities)> {
        /// Words made ready at a time, written in place (see [`QuoteIndex::build`]).
        const GROUP: usize = 16;
        let quote = Lanes::splat(b'"');
        let mut odd = OddLanes::default();
        let (blocks, _) = buffer.as_chunks::<64>();
        self.words.clear();
        // Whole blocks without a control byte, the line's until the one where it ends.
        let mut whole = 0;
        'blocks: while let Some(group) = blocks.get(whole..).filter(|rest| !rest.is_empty()) {
            let group = group.get(..GROUP).unwrap_or(group);
            self.words.resize(whole + group.len(), 0);
            let words = self.words.get_mut(whole..).unwrap_or_default();
            for (word, block) in words.iter_mut().zip(group) {
                let before = odd;
                let quotes = quote_word(block, quote, &mut odd);
                if odd.control() {
                    // The line ends in this block, or holds a control byte in it.
                    odd = before;
                    break 'blocks;
                }
                *word = quotes;
                whole += 1;
            }
        }
        self.words.truncate(whole);
        // The block where the line ends, padded with spaces (neither quotes nor odd); what
        // follows the line's end in it, the next line's, is masked out.
        let rest = buffer.get(whole * 64..)?;
        let mut last = [b' '; 64];
        let length = rest.len().min(last.len());
        last.get_mut(..length)?.copy_from_slice(rest.get(..length)?);
        let [quotes, controls, backslashes, highs] = last_block_masks(&last);
        let end = controls.trailing_zeros() as usize;
        if end < length && last.get(end) != Some(&b'\n') || end == 64 && rest.len() > 64 {
            return None;
        }
        let line = end.min(length);
        let before_end = u64::MAX.checked_shr(64 - line as u32).unwrap_or(0);
        self.words.push(quotes & before_end);
        let odd = odd.finish(&[]);
        let found = Oddities {
            backslash: odd.backslash || backslashes & before_end != 0,
            control: false,
            high: odd.high || highs & before_end != 0,
        };
        Some((whole * 64 + line, found))
    }

    /// [`QuoteIndex::build`], and `bytes` as text when that pass found them ASCII ([`ascii_text`]).
    fn build_text<'b>(&mut self, bytes: &'b [u8]) -> (Oddities, Option<&'b str>) {
        let odd = self.build(bytes);
        (odd, ascii_text(bytes, odd))
    }

    /// Validates every escape of `bytes` as the parser does, reading them from the start as a
    /// string's are read, and takes the quotes they escape out of the index. `None` for an escape
    /// the parser refuses and for `\u` escapes of surrogates (left to the parser). Reading from the
    /// start pairs the escapes as within each string whenever the scan then accepts the record,
    /// since the scan refuses a backslash anywhere outside a string.
    fn unescape(&mut self, bytes: &[u8]) -> Option<()> {
        let mut from = 0;
        while let Some(offset) = memchr::memchr(b'\\', bytes.get(from..)?) {
            let at = from + offset;
            from = at + 2;
            match *bytes.get(at + 1)? {
                b'"' => {
                    let quote = at + 1;
                    *self.words.get_mut(quote / 64)? &= !(1 << (quote % 64));
                }
                b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let digits = bytes.get(at + 2..at + 6)?;
                    let code = digits.iter().try_fold(0_u32, |code, &digit| {
                        Some(code << 4 | char::from(digit).to_digit(16)?)
                    })?;
                    if (0xD800..=0xDFFF).contains(&code) {
                        return None;
                    }
                    from = at + 6;
                }
                _ => return None,
            }
        }
        Some(())
    }

    /// The first quote at or after `from`.
    #[inline(always)]
    fn next(&self, from: usize) -> Option<usize> {
        let index = from / 64;
        let word = self.words.get(index)? & (u64::MAX << (from % 64));
        // Most strings end in the word they start in. Outside a loop: the sandbox checks its
        // deadline at the head of every loop a WebAssembly function enters, even once.
        if word != 0 {
            return Some(index * 64 + word.trailing_zeros() as usize);
        }
        let word = *self.words.get(index + 1)?;
        if word != 0 {
            return Some((index + 1) * 64 + word.trailing_zeros() as usize);
        }
        self.next_beyond(index + 2)
    }

    /// The first quote in the words from `index` on.
    #[inline(never)]
    #[cold]
    fn next_beyond(&self, mut index: usize) -> Option<usize> {
        loop {
            let word = *self.words.get(index)?;
            if word != 0 {
                return Some(index * 64 + word.trailing_zeros() as usize);
            }
            index += 1;
        }
    }
}

/// Where the quotes of `block` are, a bit a byte (byte `i` in bit `i`); its bytes are taken into
/// `odd`. The step of [`QuoteIndex::build`] and [`QuoteIndex::build_line`].
#[inline(always)]
fn quote_word(block: &[u8; 64], quote: Lanes, odd: &mut OddLanes) -> u64 {
    let (vectors, _) = block.as_chunks::<WIDTH>();
    vectors.iter().enumerate().fold(0, |word, (at, vector)| {
        let here = Lanes::load(vector);
        odd.add(here);
        word | u64::from(here.eq(quote).bitmask()) << (at * WIDTH)
    })
}

/// Where the bytes of `block` are quotes, control bytes, backslashes and bytes above 0x7F
/// ([`OddLanes::odd`]): a bit each, byte `i` in bit `i`.
fn last_block_masks(block: &[u8; 64]) -> [u64; 4] {
    let quote = Lanes::splat(b'"');
    let odd = OddLanes::default();
    let (vectors, _) = block.as_chunks::<WIDTH>();
    vectors.iter().enumerate().fold(
        [0; 4],
        |[quotes, controls, backslashes, highs], (at, vector)| {
            let here = Lanes::load(vector);
            let bits = |lanes: Lanes| u64::from(lanes.bitmask()) << (at * WIDTH);
            let [control, backslash, high] = odd.odd(here);
            [
                quotes | bits(here.eq(quote)),
                controls | bits(control),
                backslashes | bits(backslash),
                highs | bits(high),
            ]
        },
    )
}

/// The object a key belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// `userIdentity`
    UserIdentity,
    /// `userIdentity.sessionContext`
    Session,
    /// `userIdentity.sessionContext.sessionIssuer`
    Issuer,
}

struct Scanner<'a, 'q, const ESCAPED: bool, const SPACING: u8 = { Spacing::ANY }> {
    bytes: &'a [u8],
    /// `bytes` as text, when it is known to be UTF-8.
    text: Option<&'a str>,
    quotes: &'q QuoteIndex,
    at: usize,
    depth: usize,
}

/// `ESCAPED`: the record holds a backslash, so keys and kept strings are checked for escapes.
/// `SPACING`: how many spaces [`Scanner::ws`] passes (see [`walk`]).
impl<'a, const ESCAPED: bool, const SPACING: u8> Scanner<'a, '_, ESCAPED, SPACING> {
    #[inline(always)]
    fn ws(&mut self) {
        match SPACING {
            Spacing::NONE => {}
            Spacing::ONE => {
                if self.bytes.get(self.at) == Some(&b' ') {
                    self.at += 1;
                }
            }
            _ => {
                while let Some(&byte) = self.bytes.get(self.at) {
                    if byte == b' ' {
                        self.at += 1;
                    } else {
                        // Tabs and newlines were ruled out by the caller.
                        return;
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// A string's bytes, escapes as they are written.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let end = self.quotes.next(start)?;
        self.at = end + 1;
        self.bytes.get(start..end)
    }

    /// The top-level object.
    fn top(&mut self, fields: &mut RawFields<'a>) -> Option<()> {
        self.eat(b'{')?;
        self.depth = 1;
        self.members(|scanner, key| {
            // A word at a time: a `match` on byte strings compares a byte per step in WebAssembly.
            let is = |name: &[u8]| bytes::equal(key, name);
            let slot = match key {
                _ if is(b"userIdentity") => {
                    fields.raw = true;
                    fields.identity = Identity::default();
                    return scanner.container(Context::UserIdentity, &mut fields.identity);
                }
                _ if is(b"eventSource") => {
                    fields.raw = true;
                    &mut fields.event_source
                }
                _ if is(b"eventName") => {
                    fields.raw = true;
                    &mut fields.event_name
                }
                _ if is(b"eventTime") => {
                    fields.raw = true;
                    &mut fields.event_time
                }
                _ if is(b"eventVersion") => {
                    fields.raw = true;
                    return scanner.skip();
                }
                _ if is(b"requestParameters") => {
                    return scanner.text_of_value(&mut fields.request_parameters);
                }
                _ if is(b"responseElements") => {
                    return scanner.text_of_value(&mut fields.response_elements);
                }
                _ if is(b"additionalEventData") => {
                    return scanner.text_of_value(&mut fields.additional_event_data);
                }
                _ if is(b"resources") => return scanner.text_of_value(&mut fields.resources),
                _ if is(b"eventID") => &mut fields.event_id,
                _ if is(b"awsRegion") => &mut fields.aws_region,
                _ if is(b"sourceIPAddress") => &mut fields.source_ip_address,
                _ if is(b"userAgent") => &mut fields.user_agent,
                _ if is(b"errorCode") => &mut fields.error_code,
                _ if is(b"errorMessage") => &mut fields.error_message,
                _ if is(b"recipientAccountId") => &mut fields.recipient_account_id,
                _ => return scanner.skip(),
            };
            *slot = scanner.value()?;
            Some(())
        })
    }

    /// The value of a key whose object the rule reads into: an object is read member by member,
    /// anything else makes every field inside it unknown.
    fn container(&mut self, context: Context, identity: &mut Identity<'a>) -> Option<()> {
        if self.bytes.get(self.at) != Some(&b'{') {
            let slot = self.value()?;
            if slot != Slot::Absent {
                // A string or number where an object belongs: the raw mapping finds nothing in
                // it; leave such records to the parser rather than mirror that here.
                *identity = Identity {
                    invoked_by: Slot::Other,
                    arn: Slot::Other,
                    kind: Slot::Other,
                    access_key_id: Slot::Other,
                    user_name: Slot::Other,
                    account_id: Slot::Other,
                    principal_id: Slot::Other,
                    issuer_user_name: Slot::Other,
                    issuer_arn: Slot::Other,
                };
            } else if context == Context::UserIdentity {
                *identity = Identity::default();
            } else {
                identity.issuer_user_name = Slot::Absent;
                identity.issuer_arn = Slot::Absent;
            }
            return Some(());
        }
        self.at += 1;
        self.enter()?;
        let result = self.members(|scanner, key| {
            let is = |name: &[u8]| bytes::equal(key, name);
            let slot = match context {
                Context::UserIdentity if is(b"invokedBy") => &mut identity.invoked_by,
                Context::UserIdentity if is(b"arn") => &mut identity.arn,
                Context::UserIdentity if is(b"type") => &mut identity.kind,
                Context::UserIdentity if is(b"accessKeyId") => &mut identity.access_key_id,
                Context::UserIdentity if is(b"userName") => &mut identity.user_name,
                Context::UserIdentity if is(b"accountId") => &mut identity.account_id,
                Context::UserIdentity if is(b"principalId") => &mut identity.principal_id,
                Context::UserIdentity if is(b"sessionContext") => {
                    identity.issuer_user_name = Slot::Absent;
                    identity.issuer_arn = Slot::Absent;
                    return scanner.container(Context::Session, identity);
                }
                Context::Session if is(b"sessionIssuer") => {
                    identity.issuer_user_name = Slot::Absent;
                    identity.issuer_arn = Slot::Absent;
                    return scanner.container(Context::Issuer, identity);
                }
                Context::Issuer if is(b"userName") => &mut identity.issuer_user_name,
                Context::Issuer if is(b"arn") => &mut identity.issuer_arn,
                _ => return scanner.skip(),
            };
            *slot = scanner.value()?;
            Some(())
        });
        self.depth -= 1;
        result
    }

    /// Members of an object whose `{` was read, up to and including its `}`.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.key()?;
            member(self, key)?;
            self.ws();
            match self.bytes.get(self.at)? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A member's key and its colon, up to its value.
    #[inline(always)]
    fn key(&mut self) -> Option<&'a [u8]> {
        let key = self.string()?;
        if ESCAPED && memchr::memchr(b'\\', key).is_some() {
            // Keys are compared as written: one with an escape is the parser's.
            return None;
        }
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(key)
    }

    #[inline(always)]
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth < MAX_DEPTH).then_some(())
    }

    /// Any JSON value, validated; a string or `null` is classified, anything else is [`Slot::Other`].
    /// Inlined, as are [`RawFields::derive`] and [`RawFields::raw`]: in WebAssembly their calls
    /// were ~4 % of a rule pack's instructions.
    #[inline(always)]
    fn value(&mut self) -> Option<Slot<'a>> {
        Some(match *self.bytes.get(self.at)? {
            b'"' => {
                let text = self.string()?;
                if text.is_empty() {
                    Slot::Absent
                } else if ESCAPED && memchr::memchr(b'\\', text).is_some() {
                    // A string with an escape: only the parser knows its value.
                    Slot::Other
                } else {
                    // A slice between two quotes of UTF-8 text is UTF-8; anything else is declined.
                    Slot::Text(match self.text {
                        Some(_) => self.text_of(text)?,
                        None => std::str::from_utf8(text).ok()?,
                    })
                }
            }
            b'n' => self.literal(b"null").map(|()| Slot::Absent)?,
            _ => self.skip_value().map(|()| Slot::Other)?,
        })
    }

    /// `slice` of the record's bytes as a slice of its text, when the text is known.
    #[inline(always)]
    fn text_of(&self, slice: &[u8]) -> Option<&'a str> {
        let start = (slice.as_ptr() as usize).checked_sub(self.bytes.as_ptr() as usize)?;
        // Split rather than `get` with a range, which the WebAssembly build made a call per string.
        let (_, rest) = self.text?.split_at_checked(start)?;
        let (kept, _) = rest.split_at_checked(slice.len())?;
        Some(kept)
    }

    /// The value here, validated; the scalars of a wanted field go to `fields`, the objects
    /// above one are searched (`place` is the value's; see [`crate::sparse`]). `None` to leave
    /// the document to the parser.
    fn sparse(&mut self, reach: &Reach, place: Place, fields: &mut SparseFields<'a>) -> Option<()> {
        match *self.bytes.get(self.at)? {
            b'{' if place.above => {
                self.at += 1;
                self.enter()?;
                // The keys of this object that hold values: no two may both hold one field's.
                let mut holding: [&[u8]; 32] = [b""; 32];
                let mut held = 0;
                self.members(|scanner, key| {
                    match reach.step(place, key) {
                        // Raw CloudTrail: the raw mapping reads the whole record.
                        Some(inner) if place.is_top() && inner.raw => return None,
                        Some(inner) if inner.field || inner.above => {
                            let others = holding.get(..held)?;
                            if others.iter().any(|other| overlap(other, key)) {
                                return None;
                            }
                            *holding.get_mut(held)? = key;
                            held += 1;
                            scanner.sparse(reach, inner, fields)?;
                        }
                        _ => scanner.skip()?,
                    }
                    Some(())
                })?;
                self.depth -= 1;
            }
            // Arrays are passed through: their items are at the array's place.
            b'[' => {
                self.at += 1;
                self.enter()?;
                self.ws();
                if self.eat(b']').is_none() {
                    loop {
                        self.ws();
                        self.sparse(reach, place, fields)?;
                        self.ws();
                        match *self.bytes.get(self.at)? {
                            b',' => self.at += 1,
                            b']' => {
                                self.at += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                self.depth -= 1;
            }
            byte if place.field => {
                let start = self.at;
                let value = match byte {
                    b'"' => {
                        let text = self.string()?;
                        if ESCAPED && memchr::memchr(b'\\', text).is_some() {
                            return None;
                        }
                        text
                    }
                    b't' => self
                        .literal(b"true")
                        .and_then(|()| self.bytes.get(start..self.at))?,
                    b'f' => self
                        .literal(b"false")
                        .and_then(|()| self.bytes.get(start..self.at))?,
                    b'0'..=b'9' => {
                        self.number()?;
                        let digits = self.bytes.get(start..self.at)?;
                        // Fractions and integers beyond 64 bits read back otherwise: the parser's.
                        self.text_of(digits)?.parse::<u64>().ok()?;
                        digits
                    }
                    b'-' => return None,
                    // `null`, and objects, which are not values.
                    _ => return self.skip_value(),
                };
                // `""` is not a value.
                if !value.is_empty() {
                    fields.push(place, self.text_of(value)?);
                }
            }
            _ => self.skip_value()?,
        }
        Some(())
    }

    /// Any JSON value, validated, kept as its text.
    fn text_of_value(&mut self, text: &mut Option<&'a [u8]>) -> Option<()> {
        let start = self.at;
        self.skip_value()?;
        *text = self.bytes.get(start..self.at);
        Some(())
    }

    /// [`Scanner::skip_value`], a string without a call: most values skipped are strings, and a
    /// call, and each loop it enters, costs a check of the sandbox's deadline besides.
    #[inline(always)]
    fn skip(&mut self) -> Option<()> {
        if self.bytes.get(self.at) == Some(&b'"') {
            self.string().map(drop)
        } else {
            self.skip_value()
        }
    }

    /// Any JSON value, validated, for a key the rule does not read. One loop over its tokens, the
    /// kinds of the containers open inside it kept as bits, rather than a call per value: skipped
    /// values are most of a record's bytes, and calls cost most in WebAssembly.
    fn skip_value(&mut self) -> Option<()> {
        // Bit `i`: the `i`-th container open inside the value is an array. A value nested deeper
        // than its bits is left to the parser (a 128-bit shift is a call in WebAssembly).
        let mut arrays = 0_u64;
        let mut open = 0_u32;
        'value: loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.string()?;
                }
                opening @ (b'{' | b'[') => {
                    self.at += 1;
                    self.enter()?;
                    self.ws();
                    let array = opening == b'[';
                    if self.eat(if array { b']' } else { b'}' }).is_some() {
                        self.depth -= 1;
                    } else {
                        if open >= u64::BITS {
                            return None;
                        }
                        arrays = arrays & !(1 << open) | u64::from(array) << open;
                        open += 1;
                        if !array {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                b'n' => self.literal(b"null")?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // A value ended: close the containers it ends, then go on to the next value.
            loop {
                let Some(innermost) = open.checked_sub(1) else {
                    return Some(());
                };
                let array = arrays >> innermost & 1 == 1;
                self.ws();
                match *self.bytes.get(self.at)? {
                    b',' => {
                        self.at += 1;
                        self.ws();
                        if !array {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    b']' if array => {}
                    b'}' if !array => {}
                    _ => return None,
                }
                self.at += 1;
                open = innermost;
                self.depth -= 1;
            }
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes
            .get(self.at..)?
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// A JSON number without exponent (exponents can overflow `f64`, which the parser refuses).
    fn number(&mut self) -> Option<()> {
        let start = self.at;
        self.eat(b'-');
        let digits = |scanner: &mut Self| {
            let from = scanner.at;
            while scanner
                .bytes
                .get(scanner.at)
                .is_some_and(u8::is_ascii_digit)
            {
                scanner.at += 1;
            }
            scanner.at - from
        };
        let first = *self.bytes.get(self.at)?;
        let integer = digits(self);
        if integer == 0 || (first == b'0' && integer > 1) {
            return None;
        }
        if self.eat(b'.').is_some() && digits(self) == 0 {
            return None;
        }
        let next = self.bytes.get(self.at).copied();
        let plain = !matches!(next, Some(b'e' | b'E')) && self.at - start <= 40;
        plain.then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_of_the_flattened_request_parameters() {
        let member = |parameters: &str, name: &str| {
            let record =
                format!(r#"{{"eventName":"GetParameter","requestParameters":{parameters}}}"#);
            fields(&record).and_then(|fields| {
                fields
                    .flattened(RawField::RequestParameters, name)
                    .map(|slot| format!("{slot:?}"))
            })
        };
        let text = |value: &str| Some(format!("Text({value:?})"));
        let absent = Some("Absent".to_owned());
        let object =
            r#"{ "name" : "p" , "policy": {"a": "}", "b": {}}, "withDecryption":true,"n":null}"#;
        assert_eq!(member(object, "name"), text("p"));
        assert_eq!(member(object, "withDecryption"), text("true"));
        assert_eq!(
            member(r#"{"withDecryption":false}"#, "withDecryption"),
            text("false")
        );
        // Blanks and missing members are absent; the last of duplicate members counts.
        assert_eq!(member(object, "n"), absent);
        assert_eq!(member(object, "missing"), absent);
        assert_eq!(member(r#"{"name":""}"#, "name"), absent);
        assert_eq!(member("null", "name"), absent);
        assert_eq!(member(r#"{"name":"a","name":"b"}"#, "name"), text("b"));
        assert_eq!(
            member(r#"{"list":["a,]",{"b":[1]}],"name":"p"}"#, "name"),
            text("p")
        );
        // Left to the full path: numbers, objects, arrays, a value that is not an object, and text
        // whose Java rendering may reach the keyword limit (each comma of an array of numbers adds
        // a space to it).
        assert_eq!(member(r#"{"name":7}"#, "name"), None);
        assert_eq!(member(object, "policy"), None);
        assert_eq!(member(r#"{"name":"p","list":[1]}"#, "list"), None);
        assert_eq!(member(r#""text""#, "name"), None);
        let long = format!(r#"{{"name":"p","policy":"{}"}}"#, "x".repeat(40_000));
        assert_eq!(member(&long, "name"), None);
        let many = format!(r#"{{"name":"p","list":[{}1]}}"#, "1,".repeat(16_000));
        assert_eq!(member(&many, "name"), None);
        // A console sign-in's outcome: its answer, lowercased, else its errors.
        let outcome = |response: &str, error: &str| {
            let record =
                format!(r#"{{"eventName":"ConsoleLogin","responseElements":{response}{error}}}"#);
            fields(&record)
                .and_then(|fields| fields.ecs("event.outcome").map(|slot| format!("{slot:?}")))
        };
        assert_eq!(
            outcome(r#"{"ConsoleLogin":"Success"}"#, r#","errorCode":"x""#),
            text("success")
        );
        assert_eq!(
            outcome(r#"{"ConsoleLogin":"Failure"}"#, ""),
            text("failure")
        );
        assert_eq!(outcome(r#"{"ConsoleLogin":"odd"}"#, ""), text("odd"));
        assert_eq!(
            outcome(r#"{"ConsoleLogin":true}"#, r#","errorMessage":"x""#),
            text("failure")
        );
        assert_eq!(outcome(r#"{"ConsoleLogin":""}"#, ""), text("success"));
        assert_eq!(outcome("null", ""), text("success"));
        assert_eq!(outcome(r#"{"ConsoleLogin":"SUCCESS"}"#, ""), None);
        assert_eq!(outcome(r#"{"ConsoleLogin":1}"#, ""), None);
        // A console sign-in's flags: `false` for `No`, `true` for anything else.
        let flag = |data: &str, event: &str| {
            let record = format!(r#"{{"eventName":"{event}","additionalEventData":{data}}}"#);
            let field = "aws.cloudtrail.console_login.additional_eventdata.mfa_used";
            fields(&record).and_then(|fields| fields.ecs(field).map(|slot| format!("{slot:?}")))
        };
        assert_eq!(flag(r#"{"MFAUsed":"No"}"#, "ConsoleLogin"), text("false"));
        assert_eq!(flag(r#"{"MFAUsed":"Yes"}"#, "ConsoleLogin"), text("true"));
        assert_eq!(flag(r#"{"MFAUsed":false}"#, "ConsoleLogin"), text("true"));
        assert_eq!(flag(r#"{"MFAUsed":""}"#, "ConsoleLogin"), absent);
        assert_eq!(flag(r#"{"MFAUsed":"No"}"#, "GetUser"), absent);
        assert_eq!(flag(r#"{"MFAUsed":1}"#, "ConsoleLogin"), None);
        // A record without the key has none of its members.
        let record = fields(r#"{"eventName":"GetParameter"}"#);
        assert_eq!(
            record.and_then(|fields| fields.flattened(RawField::RequestParameters, "name")),
            Some(Slot::Absent)
        );
    }

    fn fields(text: &str) -> Option<RawFields<'_>> {
        scan(text)
    }

    #[test]
    fn reads_the_rule_fields() {
        let text = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","arn":"a","accountId":"1",
            "sessionContext":{"sessionIssuer":{"userName":"role"}}},"eventSource":"lambda.amazonaws.com",
            "eventName":"Invoke","eventTime":"2024-01-01T00:00:00Z","errorCode":null,"n":[1,-2.5,{"x":[]}],
            "recipientAccountId":"2","t":true,"f":false}"#
            .replace('\n', " ");
        let found = fields(&text).expect("plain record");
        assert!(found.raw);
        assert_eq!(
            found.ecs("event.provider"),
            Some(Slot::Text("lambda.amazonaws.com"))
        );
        assert_eq!(found.ecs("event.outcome"), Some(Slot::Text("success")));
        assert_eq!(found.ecs("user.name"), Some(Slot::Text("role")));
        assert_eq!(found.ecs("cloud.account.id"), Some(Slot::Text("1")));
        assert_eq!(
            found.ecs("aws.cloudtrail.user_identity.invoked_by"),
            Some(Slot::Absent)
        );
        assert_eq!(found.ecs("source.ip"), Some(Slot::Absent));
        // Rewritten by the pipeline: only the full path makes it.
        assert_eq!(found.ecs("aws.cloudtrail.request_parameters"), None);
    }

    #[test]
    fn keeps_an_address_as_the_pipeline_does() {
        let text = r#"{"eventVersion":"1.08","sourceIPAddress":"203.0.113.7","userAgent":"cli",
            "userIdentity":{"type":"IAMUser","accessKeyId":"AKIA1"}}"#
            .replace('\n', " ");
        let found = fields(&text).expect("plain record");
        assert_eq!(found.ecs("source.ip"), Some(Slot::Text("203.0.113.7")));
        assert_eq!(found.ecs("source.address"), Some(Slot::Text("203.0.113.7")));
        assert_eq!(found.ecs("user_agent.original"), Some(Slot::Text("cli")));
        assert_eq!(
            found.ecs("aws.cloudtrail.user_identity.type"),
            Some(Slot::Text("IAMUser"))
        );
        assert_eq!(
            found.ecs("aws.cloudtrail.user_identity.access_key_id"),
            Some(Slot::Text("AKIA1"))
        );
        let service = fields(r#"{"eventVersion":"1.08","sourceIPAddress":"s3.amazonaws.com"}"#)
            .expect("plain record");
        assert_eq!(service.ecs("source.ip"), Some(Slot::Absent));
        assert_eq!(
            service.ecs("source.address"),
            Some(Slot::Text("s3.amazonaws.com"))
        );
    }

    #[test]
    fn last_duplicate_wins() {
        let found =
            fields(r#"{"userIdentity":{"arn":"a","userName":"x"},"userIdentity":{"arn":"b"}}"#)
                .expect("plain");
        assert_eq!(
            found.ecs("aws.cloudtrail.user_identity.arn"),
            Some(Slot::Text("b"))
        );
        assert_eq!(found.ecs("user.name"), Some(Slot::Absent));
    }

    #[test]
    fn declines_what_it_does_not_know() {
        for text in [
            "{\"a\":\"x\ty\"}",
            // Escapes the parser refuses, or leaves to it: surrogates, keys.
            r#"{"a":"\x41"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":"\uD83D\uDE00"}"#,
            r#"{"a":"\uDE00"}"#,
            r#"{"a":"b\"}"#,
            r#"{"a":"b"\,"c":"d"}"#,
            r#"{"event\u004eame":"Invoke"}"#,
            r#"{"a":1e5}"#,
            r#"{"a":01}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":1}{"b":2}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":tru}"#,
            r#"{"a":"#,
            "[]",
            "",
        ] {
            assert!(fields(text).is_none(), "{text}");
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(fields(&deep).is_none());
        // A control byte inside a string, beside an escape and alone, in a whole block of the
        // index's pass and in its padded last one.
        let long = "x".repeat(100);
        for control in ["\t", "\n", "\u{1}", "\u{1f}"] {
            for text in [
                format!("{{\"a\":\"\\\\{control}\"}}"),
                format!("{{\"a\":\"{long}{control}{long}\"}}"),
                format!("{{\"a\":\"\\\"{long}{control}{long}\"}}"),
            ] {
                assert!(fields(&text).is_none(), "{text:?}");
            }
        }
        let found = fields(r#"{"eventSource":["lambda.amazonaws.com"],"userIdentity":"root"}"#)
            .expect("valid");
        assert_eq!(found.ecs("event.provider"), None);
        assert_eq!(found.ecs("aws.cloudtrail.user_identity.arn"), None);
    }

    #[test]
    fn finds_the_only_object_of_a_list() {
        let only = |text: &'static [u8], escapes: bool| {
            only_object(Kept { text, escapes }).map(|item| item.text)
        };
        for escapes in [false, true] {
            assert_eq!(
                only(br#"[ {"a":"]}","b":[{}]} ]"#, escapes),
                Some(&br#"{"a":"]}","b":[{}]}"#[..])
            );
            for list in [
                &br#"[{"a":1},{"b":2}]"#[..],
                br#"[{"a":1},null]"#,
                br#"["a"]"#,
                b"[]",
                br#"{"a":1}"#,
            ] {
                assert_eq!(
                    only(list, escapes),
                    None,
                    "{}",
                    String::from_utf8_lossy(list)
                );
            }
        }
        // An escaped quote does not end its string, so the brackets after it are in the string.
        assert_eq!(
            only(br#"[{"a":"\"}],{\\"}]"#, true),
            Some(&br#"{"a":"\"}],{\\"}"#[..])
        );
    }

    /// A flattened member is read past escapes in other members' strings; a key with an escape,
    /// or the member's own string with one, is left to the parser.
    #[test]
    fn reads_members_past_escapes() {
        let member = |parameters: &str, name: &str| {
            let record =
                format!(r#"{{"eventName":"AssumeRole","requestParameters":{parameters}}}"#);
            assert!(
                serde_json::from_str::<serde_json::Value>(&record).is_ok(),
                "{record}"
            );
            fields(&record).and_then(|fields| {
                fields
                    .flattened(RawField::RequestParameters, name)
                    .map(|slot| format!("{slot:?}"))
            })
        };
        let policy = r#""policy":"{\n \"a\": [\"b\", \"c\\\"],\"d\":\"\u00e9\"}""#;
        assert_eq!(
            member(
                &format!(r#"{{{policy},"serialNumber":"mfa"}}"#),
                "serialNumber"
            ),
            Some(r#"Text("mfa")"#.to_owned())
        );
        assert_eq!(
            member(
                &format!(r#"{{"serialNumber":"mfa",{policy}}}"#),
                "serialNumber"
            ),
            Some(r#"Text("mfa")"#.to_owned())
        );
        assert_eq!(
            member(
                &format!(r#"{{{policy},"nested":{{"x":"\"}}"}}}}"#),
                "missing"
            ),
            Some("Absent".to_owned())
        );
        // The parser's: a key that an escape may make the member's, the member's own escape.
        assert_eq!(
            member(r#"{"serial\u004eumber":"mfa"}"#, "serialNumber"),
            None
        );
        assert_eq!(
            member(r#"{"a\"b":"x","serialNumber":"mfa"}"#, "serialNumber"),
            None
        );
        assert_eq!(member(r#"{"serialNumber":"m\/fa"}"#, "serialNumber"), None);
    }

    /// The index's pass tells ASCII exactly as `is_ascii`, since the record's text rests on it: a
    /// byte above 0x7F (and the other odd bytes) at every offset of texts of every length around
    /// the block and vector widths, the padded tail included.
    #[test]
    fn build_text_is_the_ascii_check() {
        let mut quotes = QuoteIndex::default();
        for length in 0..200 {
            let plain: Vec<u8> = (0..length).map(|at| b"{\"a\": 1}, "[at % 10]).collect();
            let (_, text) = quotes.build_text(&plain);
            assert_eq!(text.map(str::as_bytes), Some(plain.as_slice()));
            for at in 0..length {
                for odd in [0x80, 0xC3, 0xFF, 0x7F, b'\\', 0x1F] {
                    let mut bytes = plain.clone();
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte = odd;
                    }
                    let (_, text) = quotes.build_text(&bytes);
                    assert_eq!(
                        text.is_some(),
                        bytes.is_ascii(),
                        "length {length}, {odd:#x} at {at}"
                    );
                }
            }
        }
    }

    /// A line indexed in the pass that finds its end is indexed as the same bytes alone are, and
    /// ends where the next `\n` is, or with the buffer; a line with another control byte is not
    /// indexed. Lines of every length around the block and vector widths, followed by another
    /// line or by nothing, with an odd byte at every place of the line and of the next.
    #[test]
    fn lines_are_indexed_as_records_are() {
        let (mut by_line, mut alone) = (QuoteIndex::default(), QuoteIndex::default());
        let next_lines = [&b"\n{\"b\\\"\": \"\xC3\xA9\"}\n"[..], b""];
        for (length, next) in (0..150).flat_map(|length| next_lines.map(|next| (length, next))) {
            let plain: Vec<u8> = (0..length).map(|at| b"{\"a\": 1}, "[at % 10]).collect();
            for at in 0..length + next.len() {
                for odd in [b'\n', b'\r', b'\t', 0x1F, 0x80, 0xC3, b'\\', b'"', b'n'] {
                    let mut buffer = plain.clone();
                    buffer.extend_from_slice(next);
                    if let Some(byte) = buffer.get_mut(at) {
                        *byte = odd;
                    }
                    let (end, indexed) = index_line(&buffer, &mut by_line);
                    let newline = memchr::memchr(b'\n', &buffer).unwrap_or(buffer.len());
                    assert_eq!(end, newline, "length {length}, {odd:#x} at {at}");
                    let line = &buffer[..end];
                    let expected = index(line, &mut alone);
                    if line.iter().any(|&byte| byte < 0x20) {
                        assert!(indexed.is_none(), "length {length}, {odd:#x} at {at}");
                        continue;
                    }
                    match (indexed, expected) {
                        (Some(indexed), Some(expected)) => {
                            assert_eq!(indexed.escaped, expected.escaped);
                            assert_eq!(indexed.text, expected.text);
                            assert_eq!(indexed.text.is_some(), line.is_ascii());
                            assert_eq!(
                                by_line.words, alone.words,
                                "length {length}, {odd:#x} at {at}"
                            );
                        }
                        (None, None) => {}
                        (indexed, expected) => panic!(
                            "length {length}, {odd:#x} at {at}: {} against {}",
                            indexed.is_some(),
                            expected.is_some()
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn reads_past_escapes_in_what_it_skips() {
        let text = r#"{"requestParameters":{"policy":"{\"a\":\"}\\\\\"}","n":"\u00e9\/\b"},"eventSource":"lambda.amazonaws.com","eventName":"Invok\u0065"}"#;
        assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
        let found = fields(text).expect("valid, with escapes only in values");
        assert_eq!(
            found.ecs("event.provider"),
            Some(Slot::Text("lambda.amazonaws.com"))
        );
        // A kept string with an escape: only the parser knows its value.
        assert_eq!(found.ecs("event.action"), None);
        assert_eq!(
            found.flattened(RawField::RequestParameters, "n"),
            None,
            "an object with escapes is the parser's"
        );
        let found = fields(
            r#"{"eventName":"GetParameter","requestParameters":{"withDecryption":"tru\u0065"}}"#,
        )
        .expect("valid");
        assert_eq!(
            found.flattened(RawField::RequestParameters, "withDecryption"),
            None
        );
    }
}
