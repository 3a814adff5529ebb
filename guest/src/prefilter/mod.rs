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
//! loop: [`needle_of`] runs at compile time on the rule's query. That is the `vector` pass, for
//! builds with vectors (the component, native code); builds without them (the Fluent Bit and Extism
//! modules) use the `words` pass, which finds the same things with 64-bit words and Horspool's
//! search. Both are tested against the plain definition and against each other.

use memchr::memmem;

use crate::cloudtrail;
use crate::definition::{Clause, LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL};
use crate::lanes::{Lanes, WIDTH};

#[cfg(any(
    test,
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
))]
mod vector;
#[cfg(any(
    test,
    not(any(
        all(target_arch = "wasm32", target_feature = "simd128"),
        target_arch = "x86_64"
    ))
))]
mod words;

#[cfg(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
))]
pub use vector::{survey, survey_line};
#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
pub use words::{survey, survey_line};

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
const LAST_AT: usize = NEEDLE_BYTES.len() - 1;

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
    /// No spelling of the needle starts before this place in the text: the exact search starts
    /// there rather than at the first byte (the needle is often well into a record).
    needle_from: usize,
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
        let searched = text.get(survey.needle_from..).unwrap_or(text);
        if survey.maybe_needle && finder.find(searched).is_some() {
            return false;
        }
        // Rare: only a backslash can start an escape that spells the needle.
        if survey.special && self.escape.find(text).is_some() {
            return false;
        }
        has_object_edges(text)
    }
}

/// Whether `text` holds a backslash or a byte below 0x20, and whether it holds a byte above 0x7F.
pub(crate) fn odd_bytes(text: &[u8]) -> (bool, bool) {
    let (vectors, rest) = text.as_chunks::<WIDTH>();
    let mut odd = OddLanes::default();
    for vector in vectors {
        odd.add(Lanes::load(vector));
    }
    let found = odd.finish(rest);
    (found.special(), found.high)
}

/// What [`OddLanes`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Oddities {
    pub backslash: bool,
    /// A byte below 0x20.
    pub control: bool,
    /// A byte above 0x7F.
    pub high: bool,
}

impl Oddities {
    /// A backslash or a control byte: what the prefilter calls special.
    pub(crate) fn special(self) -> bool {
        self.backslash || self.control
    }
}

/// [`odd_bytes`] sixteen bytes at a time, for a pass that looks at each vector for more besides.
#[derive(Clone, Copy)]
pub(crate) struct OddLanes {
    /// The lanes that held a control byte, and those that held a backslash: kept apart, so that
    /// the fast path tells one from the other without looking at the bytes again.
    controls: Lanes,
    backslashes: Lanes,
    /// Every byte taken in, or-ed: a high byte leaves its top bit.
    high: Lanes,
    /// The bytes compared against, made once rather than per vector.
    backslash: Lanes,
    /// The bits a byte below 0x20 lacks.
    above_controls: Lanes,
    zero: Lanes,
}

impl Default for OddLanes {
    fn default() -> Self {
        let [backslash, above_controls, zero] = [b'\\', 0xE0, 0].map(Lanes::splat);
        Self {
            controls: zero,
            backslashes: zero,
            high: zero,
            backslash,
            above_controls,
            zero,
        }
    }
}

impl OddLanes {
    /// Takes in one vector of the text.
    #[inline(always)]
    pub(crate) fn add(&mut self, here: Lanes) {
        let [control, backslash, high] = self.odd(here);
        self.controls = self.controls.or(control);
        self.backslashes = self.backslashes.or(backslash);
        self.high = self.high.or(high);
    }

    /// The lanes of `here` that hold a control byte, a backslash, and a byte above 0x7F (its top
    /// bit set, as [`Lanes::bitmask`] reads it).
    #[inline(always)]
    pub(crate) fn odd(&self, here: Lanes) -> [Lanes; 3] {
        [
            here.and(self.above_controls).eq(self.zero),
            here.eq(self.backslash),
            here,
        ]
    }

    /// Whether a vector taken in held a control byte.
    #[inline(always)]
    pub(crate) fn control(&self) -> bool {
        self.controls.any()
    }

    /// What the vectors taken in, followed by `rest`, hold.
    pub(crate) fn finish(self, rest: &[u8]) -> Oddities {
        Oddities {
            backslash: self.backslashes.any() || rest.contains(&b'\\'),
            control: self.controls.any() || rest.iter().any(|&byte| byte < 0x20),
            high: self.high.bitmask() != 0 || !rest.is_ascii(),
        }
    }
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
    use crate::testing::xorshift;

    /// Both passes, whichever this build uses: each must decide as the definition.
    type Pass = (fn(&[u8]) -> Survey, fn(&[u8]) -> (usize, Survey));
    const PASSES: [Pass; 2] = [
        (vector::survey, vector::survey_line),
        (words::survey, words::survey_line),
    ];

    /// The survey of `text` lets the exact search start no later than where the needle first is,
    /// if it is there (`text` as evaluated: a line trimmed).
    fn assert_starts_the_search_in_time(text: &[u8], survey: &Survey) {
        if let Some(first) = memmem::find(text, NEEDLE_BYTES) {
            assert!(survey.maybe_needle, "{}", String::from_utf8_lossy(text));
            assert!(
                survey.needle_from <= first,
                "from {} for a needle at {first}: {}",
                survey.needle_from,
                String::from_utf8_lossy(text)
            );
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
            for (survey, _) in PASSES {
                let survey = survey(&text);
                assert_eq!(
                    needle.skips_surveyed(&text, &survey),
                    expected,
                    "{}",
                    String::from_utf8_lossy(&text)
                );
                assert_starts_the_search_in_time(&text, &survey);
            }
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
            for (survey, _) in PASSES {
                let survey = survey(text.as_bytes());
                assert_eq!(
                    (survey.special, survey.non_ascii),
                    (special, non_ascii),
                    "{text}"
                );
            }
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
            if next().is_multiple_of(4) {
                line.splice(0..0, *b"  ");
            }
            // Up to two pieces: a needle after leading spaces, after a tab, after non-ASCII text.
            for _ in 0..next() % 3 {
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
        for (survey, survey_line) in PASSES {
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
                    needle.skips_surveyed(trimmed, &survey(trimmed)),
                    "{}",
                    String::from_utf8_lossy(line)
                );
                assert_starts_the_search_in_time(trimmed, &found);
                start += length + 1;
            }
            assert_eq!(start, buffer.len() + 1);
        }
    }
}
