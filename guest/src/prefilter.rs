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
//! Full evaluation also reports malformed JSON. A skipped record is not parsed: it only has to look
//! like an object at its edges (after trimming JSON whitespace it starts with `{` and ends with `}`).
//! A record failing that goes to the full parser, which reports the exact error, so empty lines,
//! scalars, arrays and most truncated lines are still reported. A record that looks like an object
//! at its edges but is broken inside (`{"a": }`, two documents glued on one line, a cut that happens
//! to end in `}`) and holds neither the needle nor `\u` is accepted silently. It cannot raise an
//! alert and cannot change the history (only matching records do), so detection is the same; only
//! the error report is lost. Finding that it is broken would cost a look at every byte's role (a
//! bracket count, a parse) in every record, which is most of the rule's time on a real stream. A
//! record that holds the needle is always parsed, and reported if it is broken.
//!
//! # One pass
//! [`survey`] reads a record once, sixteen bytes at a time, and finds together where the needle may
//! start (its first, middle and last bytes in place) and whether an odd byte is there (a backslash,
//! a control or non-ASCII byte). It stops at the first odd byte: the exact, slower checks take over
//! from there. In a buffer of lines ([`survey_line`]) the line break that ends the line is such a
//! byte, so the same pass finds where the line ends. The needle's bytes are constants of the compiled
//! loop: [`needle_of`] runs at compile time on the rule's query.

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
/// The bytes one vector step reads: its own, and the needle's last byte for a needle starting in it.
const SPAN: usize = LAST_AT + WIDTH;
/// A byte in no needle and not odd to the survey: pads the end of a text to a whole step.
const PADDING: u8 = {
    let mut byte = b'#';
    while byte < b'~' {
        let mut in_needle = false;
        let mut index = 0;
        while index < NEEDLE_BYTES.len() {
            in_needle |= NEEDLE_BYTES[index] == byte;
            index += 1;
        }
        if !in_needle && byte != b'\\' {
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
    /// Somewhere the needle's first, middle and last bytes stand where the needle would put them;
    /// or the vector pass stopped before the end (it stops at the first odd byte), so the rest is
    /// left to the exact search.
    maybe_needle: bool,
    /// A backslash or a byte below 0x20 (an escape, a tab, a line break, a control byte).
    pub special: bool,
    /// A byte of 0x80 or above: the text is not plain ASCII (and may not be UTF-8).
    pub non_ascii: bool,
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
    /// documented trade-off on malformed input), so the record may be skipped.
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
        // Rare: only a backslash can start an escape that spells the needle.
        if survey.special && self.escape.find(text).is_some() {
            return false;
        }
        has_object_edges(text)
    }
}

/// What the vector pass saw.
struct Pass {
    /// Where the first odd byte (a backslash, a byte below 0x20 or above 0x7F) is, or the end of
    /// the text. The pass stops at the step holding it.
    first_odd: usize,
    /// Every position before this was looked at as a possible start of the needle.
    searched: usize,
    /// The needle's first, middle and last bytes stand in place somewhere before `searched`.
    found: bool,
}

/// One pass over `text`, a whole record.
pub fn survey(text: &[u8]) -> Survey {
    let pass = vector_pass(text);
    match text.get(pass.first_odd..) {
        Some(rest) if !rest.is_empty() => Survey::of_rest(&pass, rest, text.len()),
        _ => Survey::plain(&pass),
    }
}

/// The first line of `buffer`: where it ends (its `\n`, or the end of the buffer), and the survey of
/// the line trimmed of ASCII whitespace, which is what [`crate::Detector::process_ndjson`]
/// evaluates. One pass finds both: a line break is an odd byte, so in a plain line the first odd
/// byte is the line break.
pub fn survey_line(buffer: &[u8]) -> (usize, Survey) {
    let pass = vector_pass(buffer);
    let from_odd = buffer.get(pass.first_odd..).unwrap_or_default();
    if from_odd.first() == Some(&b'\n') {
        return (pass.first_odd, Survey::plain(&pass));
    }
    let end = memchr::memchr(b'\n', from_odd).map_or(buffer.len(), |at| pass.first_odd + at);
    let line = buffer.get(..end).unwrap_or_default();
    let first = line.len() - line.trim_ascii_start().len();
    let last = line.trim_ascii_end().len();
    let rest = line
        .get(pass.first_odd.max(first)..last)
        .unwrap_or_default();
    (end, Survey::of_rest(&pass, rest, last))
}

impl Survey {
    /// The survey of a text with no odd byte before `pass.first_odd`, where it ends.
    fn plain(pass: &Pass) -> Self {
        Self {
            maybe_needle: pass.found && NEEDLE.is_some(),
            special: false,
            non_ascii: false,
        }
    }

    /// The survey of a text whose vector pass was `pass`, whose bytes from the first odd byte are
    /// `rest` (trimmed), and whose needle could start anywhere before `end`.
    fn of_rest(pass: &Pass, rest: &[u8], end: usize) -> Self {
        let (special, non_ascii) = odd_bytes(rest);
        Self {
            maybe_needle: (pass.found || special || non_ascii || end > pass.searched)
                && NEEDLE.is_some(),
            special,
            non_ascii,
        }
    }
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

/// Sixteen bytes at a time (WebAssembly SIMD in the component), two vectors a step: looks for the
/// needle up to the first odd byte. In a record that is the rare case (an escape, a tab, non-ASCII
/// text); at the end of a line it is the line break.
fn vector_pass(text: &[u8]) -> Pass {
    let steps = whole_steps(text);
    if let Some(odd) = steps.odd {
        return Pass {
            first_odd: steps.at + odd.trailing_zeros() as usize,
            searched: steps.at + STEP,
            found: steps.found,
        };
    }
    // The rest, shorter than a step and its reach, padded to whole vectors.
    let tail = text.get(steps.at..).unwrap_or_default();
    let mut padded = [PADDING; 2 * STEP + SPAN];
    if let Some(start) = padded.get_mut(..tail.len()) {
        start.copy_from_slice(tail);
    }
    let mut found = steps.found;
    for vector in (0..tail.len()).step_by(WIDTH) {
        let (odd, found_here) = look(padded.get(vector..).and_then(<[u8]>::first_chunk::<SPAN>));
        found |= found_here.any();
        if odd.any() {
            return Pass {
                first_odd: steps.at + vector + odd.bitmask().trailing_zeros() as usize,
                searched: steps.at + vector + WIDTH,
                found,
            };
        }
    }
    Pass {
        first_odd: text.len(),
        searched: text.len(),
        found,
    }
}

/// What the steps that fit whole in a text saw.
struct Steps {
    /// Where the last step looked at starts (the one with an odd byte), or where the steps end.
    at: usize,
    /// The odd bytes of the step at `at`, one bit a byte; `None` if the steps ran out first.
    odd: Option<u32>,
    /// The needle may start before the end of the last step looked at.
    found: bool,
}

/// The main loop. Out of line, so that the constants it compares with are not also live across
/// the rest of the pass (the tail's calls would make the compiled loop keep them on the stack).
#[inline(never)]
fn whole_steps(text: &[u8]) -> Steps {
    let mut found = Lanes::splat(0);
    let mut at = 0;
    while let Some(window) = text.get(at..).and_then(<[u8]>::first_chunk::<DOUBLE_SPAN>) {
        let (odd_first, found_first) = look(window.first_chunk::<SPAN>());
        let (odd_second, found_second) = look(window.last_chunk::<SPAN>());
        found = found.or(found_first).or(found_second);
        if odd_first.or(odd_second).any() {
            return Steps {
                at,
                odd: Some(u32::from(odd_first.bitmask()) | u32::from(odd_second.bitmask()) << 16),
                found: found.any(),
            };
        }
        at += STEP;
    }
    Steps {
        at,
        odd: None,
        found: found.any(),
    }
}

/// One vector, the first `WIDTH` bytes of `window`: where odd bytes are, and where the needle's
/// first, middle and last bytes stand in place (read from the window's later bytes).
#[inline(always)]
fn look(window: Option<&[u8; SPAN]>) -> (Lanes, Lanes) {
    let view = |offset: usize| window?.get(offset..)?.first_chunk::<WIDTH>();
    let (Some(here), Some(middle), Some(last)) = (view(0), view(MIDDLE_AT), view(LAST_AT)) else {
        // Unreachable (the window is long enough), but if it were: odd, so the exact checks run.
        let all = Lanes::splat(0xff);
        return (all, all);
    };
    // Spelled out rather than `array::map`, which a size-optimised build keeps as a loop.
    let (here, middle, last) = (Lanes::load(here), Lanes::load(middle), Lanes::load(last));
    // Signed, bytes of 0x80 and above are below 0x20 too.
    let odd = here
        .eq(Lanes::splat(b'\\'))
        .or(here.lt_signed(Lanes::splat(b' ')));
    let found = here
        .eq(Lanes::splat(NEEDLE_BYTES[0]))
        .and(middle.eq(Lanes::splat(NEEDLE_BYTES[MIDDLE_AT])))
        .and(last.eq(Lanes::splat(NEEDLE_BYTES[LAST_AT])));
    (odd, found)
}

fn is_json_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// After trimming JSON whitespace, starts with `{` and ends with `}`: what a record that is not
/// parsed must look like.
fn has_object_edges(text: &[u8]) -> bool {
    let start = text.iter().position(|&byte| !is_json_whitespace(byte));
    let end = text.iter().rposition(|&byte| !is_json_whitespace(byte));
    matches!((start, end), (Some(start), Some(end))
        if end > start && text[start] == b'{' && text[end] == b'}')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for the random texts below.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

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
    /// edges. Random texts over an alphabet of the bytes that matter, of every length around the
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
                && has_object_edges(text)
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
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
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
    fn checks_the_edges() {
        // Broken inside but object-shaped at the edges: the documented trade-off.
        for good in [
            &b"{}"[..],
            b" {\"a\": 1}\r\n",
            b"{\"a\":{\"b\":{}}}",
            b"{}{}",
            b"{\"a\":{\"b\":1}",
        ] {
            assert!(has_object_edges(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b""[..],
            b"   ",
            b"{",
            b"}",
            b"}{",
            b"[{}]",
            b"12",
            b"{\"a\":1",
            b"\x0c{}",
        ] {
            assert!(!has_object_edges(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// A buffer of lines surveyed line by line finds the same ends as a search for `\n`, and decides
    /// each line as the survey of the line alone, trimmed. Lines of every length around the vector
    /// width and the needle's reach, with odd bytes, needles and spaces at every offset.
    #[test]
    fn survey_line_finds_the_line_and_decides_as_survey() {
        let needle = Needle::for_rule();
        let pieces: [&[u8]; 7] = [
            b"lambda.amazonaws.com",
            b"lambda.amazonaws.co",
            b"\\u006c",
            b" \t ",
            b"\r",
            b"\xc3\xa9",
            b"   ",
        ];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut buffer = Vec::new();
        let mut lines = Vec::new();
        for _ in 0..3_000 {
            let mut line = vec![b'{'];
            let alphabet = b"ab:,\"{}[] ";
            line.extend(
                (0..next() % 120).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]),
            );
            if next().is_multiple_of(2) {
                let piece = pieces[(next() % pieces.len() as u64) as usize];
                let at = (next() % line.len() as u64) as usize;
                line.splice(at..at, piece.iter().copied());
            }
            line.push(b'}');
            buffer.extend_from_slice(&line);
            buffer.push(b'\n');
            lines.push(line);
        }
        // The last line has no line break.
        buffer.pop();
        let mut start = 0;
        for line in &lines {
            let (length, found) = survey_line(&buffer[start..]);
            assert_eq!(&buffer[start..start + length], &line[..]);
            let trimmed = line.trim_ascii();
            let alone = survey(trimmed);
            assert_eq!(
                (found.special, found.non_ascii),
                (alone.special, alone.non_ascii),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(
                needle.skips_surveyed(trimmed, &found),
                needle.skips(trimmed),
                "{}",
                String::from_utf8_lossy(line)
            );
            start += length + 1;
        }
        assert_eq!(start, buffer.len() + 1);
    }
}
