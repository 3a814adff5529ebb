//! A sound prefilter: most records of a CloudTrail stream cannot match the query, and can be told
//! apart from the raw text without parsing it.
//!
//! # Why skipping is sound
//! The query requires an exact value (`event.provider: "lambda.amazonaws.com"`). Whether the record
//! is raw CloudTrail (`eventSource`) or ECS (nested objects, dotted keys, a mix, arrays), that value
//! can only come from a JSON *string* whose decoded content equals the needle: numbers and booleans
//! never do. A JSON string spells its content literally except for escapes, and the only escape that
//! can produce a letter or a dot is `\uXXXX` (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t` produce
//! other characters). So when the text contains neither the needle nor `\u` anywhere (keys included),
//! no field of the record has that value, the query cannot hold, and full evaluation would return "no
//! alerts". The needle is taken from the rule's own definition ([`needle_of`]), not hard-coded.
//!
//! # The product trade-off on malformed input
//! Full evaluation also reports malformed JSON. A skipped record is not parsed, so it only gets a cheap
//! shape check: after trimming JSON whitespace it must start with `{`, end with `}`, hold as many `{`
//! and `[` as `}` and `]` (fewer than the parser's depth limit), and no `}` followed (after
//! whitespace) by `{` (two documents glued together). A record failing the shape check goes to the
//! full parser, which reports the exact error; so empty lines, truncated lines, arrays, scalars and
//! glued documents are still reported. A record that has the shape of an object but is broken
//! *inside* (`{"a": }`) and cannot match the query is accepted silently: it could never raise an
//! alert, and finding that it is broken would cost a full parse of every record.
//!
//! # One pass
//! [`survey`] reads a record once, sixteen bytes at a time, and finds all of that together: where
//! the needle may start (its first, middle and last bytes in place), the bracket counts, and whether
//! anything unusual is there (a backslash, a control or non-ASCII byte, a `}` followed by `{` or a
//! space), which sends the record to the exact, slower checks. The needle's bytes are constants of
//! the compiled loop: [`needle_of`] runs at compile time on the rule's query.

use memchr::memmem;

use crate::cloudtrail;
use crate::definition::{Clause, LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL};
use crate::lanes::{Lanes, WIDTH};

/// The needle for a conjunctive query: the value of its first exact-value clause on a field that
/// the raw CloudTrail mapping copies verbatim (a constant the mapping adds, such as
/// `data_stream.dataset`, is not in a raw record's text), and whose value can only be spelled
/// literally or with `\u` escapes. `None` disables the prefilter: every record is parsed.
pub const fn needle_of(query: &[Clause]) -> Option<&'static str> {
    let mut index = 0;
    while index < query.len() {
        if let Clause::Is { field, value } = query[index]
            && cloudtrail::copies_verbatim(field)
            && is_plain(value.as_bytes())
        {
            return Some(value);
        }
        index += 1;
    }
    None
}

/// Not empty, and spelled only with characters a JSON string can hold unescaped and that no
/// two-character escape yields (so only `\u` escapes can spell it otherwise).
const fn is_plain(value: &[u8]) -> bool {
    let mut index = 0;
    while index < value.len() {
        let byte = value[index];
        if byte < 0x20 || byte == b'"' || byte == b'\\' || byte == b'/' {
            return false;
        }
        index += 1;
    }
    !value.is_empty()
}

/// The rule's needle, chosen from its query at compile time: the vector loop compares with its
/// bytes as constants.
const NEEDLE: Option<&str> = needle_of(LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL.query);
const NEEDLE_BYTES: &[u8] = match NEEDLE {
    Some(needle) => needle.as_bytes(),
    None => b"\0",
};
const MIDDLE_AT: usize = NEEDLE_BYTES.len() / 2;
const LAST_AT: usize = NEEDLE_BYTES.len() - 1;
/// The bytes one vector step reads: its own, one more (for glue), and the needle's last byte for a
/// needle starting in the vector.
const SPAN: usize = if LAST_AT > 1 { LAST_AT } else { 1 } + WIDTH;
/// A byte in no needle and meaningless to the survey: pads the end of a text to a whole step.
const PADDING: u8 = {
    let mut byte = b'#';
    while byte < b'~' {
        let mut in_needle = false;
        let mut index = 0;
        while index < NEEDLE_BYTES.len() {
            in_needle |= NEEDLE_BYTES[index] == byte;
            index += 1;
        }
        if !in_needle && byte != b'[' && byte != b'\\' && byte != b'{' && byte != b'}' {
            break;
        }
        byte += 1;
    }
    byte
};

/// What the prefilter looks for in a record's text.
pub struct Needle {
    finder: Option<memmem::Finder<'static>>,
    escape: memmem::Finder<'static>,
}

/// What one pass over a record's bytes found: all that the prefilter, the fast path and the UTF-8
/// check need to know about the whole text, so that a record that cannot match is read once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Survey {
    /// Somewhere the needle's first, middle and last bytes stand where the needle would put them.
    maybe_needle: bool,
    /// Something the one pass does not settle: a backslash, a byte below 0x20 or above 0x7F, or a
    /// `}` followed at once by `{` or a space (glued documents start so, or look so). The fields
    /// below are then found the slow way.
    unusual: bool,
    /// A backslash or a byte below 0x20 (an escape, a tab, a line break, a control byte).
    pub special: bool,
    /// A byte of 0x80 or above: the text is not plain ASCII (and may not be UTF-8).
    pub non_ascii: bool,
    /// `{` and `[` less `}` and `]`.
    balance: i32,
    /// `{` and `[`: a bound on the nesting depth.
    nests: u32,
}

/// What the vector loop adds up between two sums.
struct Tally {
    balance: Lanes,
    nests: Lanes,
    unusual: Lanes,
    found: Lanes,
}

impl Needle {
    /// The needle of the rule's query (see [`needle_of`]).
    pub fn for_rule() -> Self {
        Self {
            finder: NEEDLE.map(|needle| memmem::Finder::new(needle.as_bytes())),
            escape: memmem::Finder::new(b"\\u"),
        }
    }

    /// Whether full evaluation of `text` would certainly return "no alerts, no error" (modulo the
    /// documented trade-off on objects broken inside), so the record may be skipped.
    pub fn skips(&self, text: &[u8]) -> bool {
        self.skips_surveyed(text, &survey(text))
    }

    /// [`Needle::skips`], given the [`survey`] of `text`.
    pub fn skips_surveyed(&self, text: &[u8], survey: &Survey) -> bool {
        let Some(finder) = &self.finder else {
            return false;
        };
        if survey.maybe_needle && finder.find(text).is_some() {
            return false;
        }
        if survey.unusual {
            // Rare: an escape might spell the needle, whitespace may be more than spaces, or
            // documents may be glued.
            return !(survey.special && self.escape.find(text).is_some()) && has_object_shape(text);
        }
        // No control byte: the only JSON whitespace is the space, and no `}` is followed by a space
        // or `{`, so no `}` is followed by whitespace and `{`: this is `has_object_shape`.
        let trimmed = text.trim_ascii();
        trimmed.len() >= 2
            && trimmed.first() == Some(&b'{')
            && trimmed.last() == Some(&b'}')
            && survey.balance == 0
            && survey.nests < PARSER_DEPTH_LIMIT
    }
}

/// One pass over `text`, sixteen bytes at a time (WebAssembly SIMD in the component).
pub fn survey(text: &[u8]) -> Survey {
    let mut survey = Survey::default();
    let mut at = 0;
    // Per lane, the balance stays within an `i8` and the counts within a `u8`: at most 126 vectors
    // between two sums. Two vectors a step: half the loop's own work per byte.
    let group = 63 * STEP;
    while at + STEP + SPAN - WIDTH <= text.len() {
        let mut tally = Tally::new();
        let end = text.len().min(at + group + SPAN - WIDTH);
        while let Some(window) = text
            .get(at..end)
            .and_then(<[u8]>::first_chunk::<DOUBLE_SPAN>)
        {
            tally.step(window.first_chunk::<SPAN>());
            tally.step(window.last_chunk::<SPAN>());
            at += STEP;
        }
        tally.add_to(&mut survey);
    }
    // The rest, shorter than a step, padded to whole vectors.
    let tail = text.get(at..).unwrap_or_default();
    let mut padded = [PADDING; 2 * STEP + SPAN];
    if let Some(start) = padded.get_mut(..tail.len()) {
        start.copy_from_slice(tail);
        let mut tally = Tally::new();
        for vector in (0..tail.len()).step_by(WIDTH) {
            tally.step(padded.get(vector..).and_then(<[u8]>::first_chunk::<SPAN>));
        }
        tally.add_to(&mut survey);
    }
    survey.maybe_needle &= NEEDLE.is_some();
    if survey.unusual {
        (survey.special, survey.non_ascii) = odd_bytes(text);
    }
    survey
}

/// Whether `text` holds a backslash or a byte below 0x20, and whether it holds a byte above 0x7F.
pub(crate) fn odd_bytes(text: &[u8]) -> (bool, bool) {
    let (vectors, rest) = text.as_chunks::<WIDTH>();
    let [backslash, space, zero] = [b'\\', b' ', 0].map(Lanes::splat);
    let (mut special, mut high) = (zero, zero);
    for vector in vectors {
        let here = Lanes::load(vector);
        let is_high = here.lt_signed(zero);
        // Signed, "below a space" takes in the high bytes too: keep only those that are not high.
        let control = here.lt_signed(space).and(is_high.eq(zero));
        special = special.or(here.eq(backslash)).or(control);
        high = high.or(is_high);
    }
    (
        special.any() || rest.iter().any(|&byte| byte == b'\\' || byte < 0x20),
        high.any() || !rest.is_ascii(),
    )
}

/// Bytes one step of the main loop covers: two vectors.
const STEP: usize = 2 * WIDTH;
/// What the two vectors of a step read.
const DOUBLE_SPAN: usize = WIDTH + SPAN;

impl Tally {
    fn new() -> Self {
        let zero = Lanes::splat(0);
        Self {
            balance: zero,
            nests: zero,
            unusual: zero,
            found: zero,
        }
    }

    /// One vector: the first `WIDTH` bytes of `window`, with the bytes one on and at the needle's
    /// middle and last offsets.
    #[inline(always)]
    fn step(&mut self, window: Option<&[u8; SPAN]>) {
        let view = |offset: usize| window?.get(offset..)?.first_chunk::<WIDTH>();
        let (Some(here), Some(next), Some(middle), Some(last)) =
            (view(0), view(1), view(MIDDLE_AT), view(LAST_AT))
        else {
            return;
        };
        // Spelled out rather than `array::map`, which a size-optimised build keeps as a loop.
        let (here, next, middle, last) = (
            Lanes::load(here),
            Lanes::load(next),
            Lanes::load(middle),
            Lanes::load(last),
        );
        let (open, close) = (Lanes::splat(b'{'), Lanes::splat(b'}'));
        let (space, backslash) = (Lanes::splat(b' '), Lanes::splat(b'\\'));
        // `{` and `[`, `}` and `]` differ in one bit (0x20, the space): fold them together.
        let folded = here.or(space);
        let opens = folded.eq(open);
        // A mask lane is -1: subtracting counts one up, adding counts one down.
        self.balance = self.balance.sub(opens).add(folded.eq(close));
        self.nests = self.nests.sub(opens);
        // Signed, bytes of 0x80 and above are below 0x20 too.
        let odd_byte = here.eq(backslash).or(here.lt_signed(space));
        let glue = here.eq(close).and(next.eq(open).or(next.eq(space)));
        self.unusual = self.unusual.or(odd_byte).or(glue);
        let found = here
            .eq(Lanes::splat(NEEDLE_BYTES[0]))
            .and(middle.eq(Lanes::splat(NEEDLE_BYTES[MIDDLE_AT])))
            .and(last.eq(Lanes::splat(NEEDLE_BYTES[LAST_AT])));
        self.found = self.found.or(found);
    }

    fn add_to(&self, survey: &mut Survey) {
        survey.balance += self.balance.sum_signed();
        survey.nests += self.nests.sum_unsigned();
        survey.unusual |= self.unusual.any();
        survey.maybe_needle |= self.found.any();
    }
}

fn is_json_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// `serde_json` refuses documents nested deeper than this.
const PARSER_DEPTH_LIMIT: u32 = 128;

/// Starts with `{`, ends with `}` (JSON whitespace aside), has as many `{` and `[` as `}` and `]`,
/// cannot nest deeper than the parser takes, and no `}` is followed by `{`.
fn has_object_shape(text: &[u8]) -> bool {
    let start = text.iter().position(|&byte| !is_json_whitespace(byte));
    let end = text.iter().rposition(|&byte| !is_json_whitespace(byte));
    let (Some(start), Some(end)) = (start, end) else {
        return false;
    };
    if end <= start || text[start] != b'{' || text[end] != b'}' {
        return false;
    }
    // Searches for the few brackets rather than a look at every byte.
    let mut opens = 0_u32;
    for at in memchr::memchr3_iter(b'{', b'[', b'}', text) {
        if text[at] != b'}' {
            opens += 1;
        } else if let Some(rest) = text.get(at + 1..=end)
            && rest.iter().find(|&&byte| !is_json_whitespace(byte)) == Some(&b'{')
        {
            return false;
        }
    }
    let closes = memchr::memchr2_iter(b'}', b']', text).count() as u32;
    opens == closes && opens < PARSER_DEPTH_LIMIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_needle_from_the_query() {
        let needle = Needle::for_rule();
        // Not `aws.cloudtrail` (the first exact value): raw records do not spell the dataset.
        assert_eq!(NEEDLE, Some("lambda.amazonaws.com"));
        assert!(needle.finder.is_some());
        let clause = |field, value| Clause::Is { field, value };
        assert_eq!(
            needle_of(&[clause("data_stream.dataset", "aws.cloudtrail")]),
            None
        );
        assert_eq!(needle_of(&[clause("event.provider", "a/b")]), None);
        assert_eq!(needle_of(&[clause("event.provider", "")]), None);
        assert_eq!(
            needle_of(&[
                Clause::Exists { field: "user.name" },
                clause("user.name", "x\"y"),
                clause("event.action", "Invoke")
            ]),
            Some("Invoke")
        );
        assert!(!needle.skips(br#"{"eventSource": "lambda.amazonaws.com"}"#));
        assert!(!needle.skips(br#"{"eventSource": "lambda\u002eamazonaws.com"}"#));
        assert!(!needle.skips(br#"{"eventSource": "s3.amazonaws.com""#));
        assert!(needle.skips(br#"{"eventSource": "s3.amazonaws.com"}"#));
    }

    /// The one-pass survey decides exactly as the plain definition: no needle, no `\u`, object
    /// shape. Random texts over an alphabet of the bytes that matter, of every length around the
    /// vector width and the needle's reach, with needles and near-misses planted at every offset.
    #[test]
    fn survey_decides_as_the_definition() {
        let needle = Needle::for_rule();
        let Some(finder) = &needle.finder else {
            panic!("the rule has a needle");
        };
        let definition = |text: &[u8]| {
            finder.find(text).is_none()
                && needle.escape.find(text).is_none()
                && has_object_shape(text)
        };
        let alphabet = b"{}[] \t\r\n\\u\"a:,0lm.\x01\xc3";
        let pieces: [&[u8]; 6] = [
            b"lambda.amazonaws.com",
            b"lambda.amazonaws.co",
            b"lambdaXamazonaws.com",
            b"} {",
            b"}{",
            b"\\u002e",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut skipped, mut kept) = (0, 0);
        for round in 0..60_000 {
            let length = (next() % 90) as usize;
            let mut text: Vec<u8> = (0..length)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if round % 3 == 0 && !text.is_empty() {
                let piece = pieces[(next() % pieces.len() as u64) as usize];
                let at = (next() % text.len() as u64) as usize;
                text.splice(at..at, piece.iter().copied());
            }
            if round % 2 == 0 {
                // Mostly object-shaped, as real records are.
                text.retain(|&byte| {
                    !matches!(byte, b'{' | b'}' | b'\\' | b'\t' | b'\r' | b'\n' | 1)
                });
                text.insert(0, b'{');
                text.push(b'}');
            }
            let expected = definition(&text);
            assert_eq!(
                needle.skips(&text),
                expected,
                "{}",
                String::from_utf8_lossy(&text)
            );
            if expected {
                skipped += 1;
            } else {
                kept += 1;
            }
        }
        assert!(
            skipped > 5_000 && kept > 5_000,
            "{skipped} skipped, {kept} kept"
        );
    }

    #[test]
    fn survey_reports_the_bytes_it_saw() {
        let long = "{\"a\":\"".to_owned() + &"x".repeat(300) + "\"}";
        for (text, special, non_ascii) in [
            (long.clone(), false, false),
            (long.replace("xxx", "\t"), true, false),
            (long.replace("xxx", "\\\""), true, false),
            (long.replace("xxx", "é"), false, true),
            (long + "é", false, true),
        ] {
            let survey = survey(text.as_bytes());
            assert_eq!(
                (survey.special, survey.non_ascii),
                (special, non_ascii),
                "{text}"
            );
        }
    }

    #[test]
    fn checks_the_shape() {
        for good in [&b"{}"[..], b" {\"a\": 1}\r\n", b"{\"a\":{\"b\":{}}}"] {
            assert!(has_object_shape(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b"   ",
            b"{",
            b"}",
            b"[{}]",
            b"12",
            b"{}{}",
            b"{\"a\":1} {\"b\":2}",
            b"{\"a\":1",
            b"{\"a\":{\"b\":1}",
            b"\x0c{}",
        ] {
            assert!(!has_object_shape(bad), "{}", String::from_utf8_lossy(bad));
        }
        let deep = "{\"a\":".repeat(200) + "1" + &"}".repeat(200);
        let deep_arrays = "{\"a\":".to_owned() + &"[".repeat(200) + &"]".repeat(200) + "}";
        for bad in [deep.as_bytes(), deep_arrays.as_bytes()] {
            assert!(!has_object_shape(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
