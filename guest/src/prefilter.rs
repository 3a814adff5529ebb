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
//! alerts". The needle is taken from the rule's own definition ([`Needle::for_query`]), not hard-coded.
//!
//! # The product trade-off on malformed input
//! Full evaluation also reports malformed JSON. A skipped record is not parsed, so it only gets a cheap
//! shape check: after trimming JSON whitespace it must start with `{`, end with `}`, and hold no `}`
//! followed (after whitespace) by `{` (two documents glued together). A record failing the shape
//! check goes to the full parser, which reports the exact error; so empty lines, truncated lines,
//! arrays, scalars and glued documents are still reported. A record that has the shape of an object but
//! is broken *inside* (`{"a": }`) and cannot match the query is accepted silently: it could never
//! raise an alert, and finding that it is broken would cost a full parse of every record.

use memchr::memmem;

use crate::cloudtrail;
use crate::definition::Clause;

/// What the prefilter looks for in a record's text.
pub struct Needle {
    finder: Option<memmem::Finder<'static>>,
    escape: memmem::Finder<'static>,
}

impl Needle {
    /// The needle for a conjunctive query: the value of its first exact-value clause on a field that
    /// the raw CloudTrail mapping copies verbatim (a constant the mapping adds, such as
    /// `data_stream.dataset`, is not in a raw record's text), and whose value can only be spelled
    /// literally or with `\u` escapes. No such clause disables the prefilter: every record is parsed.
    pub fn for_query(query: &'static [Clause]) -> Self {
        let value = query.iter().find_map(|clause| match *clause {
            Clause::Is { field, value }
                if cloudtrail::copies_verbatim(field)
                    && !value.is_empty()
                    && value.bytes().all(|byte| {
                        byte >= 0x20 && byte != b'"' && byte != b'\\' && byte != b'/'
                    }) =>
            {
                Some(value)
            }
            _ => None,
        });
        Self {
            finder: value.map(|value| memmem::Finder::new(value.as_bytes())),
            escape: memmem::Finder::new(b"\\u"),
        }
    }

    /// Whether full evaluation of `text` would certainly return "no alerts, no error" (modulo the
    /// documented trade-off on objects broken inside), so the record may be skipped.
    pub fn skips(&self, text: &[u8]) -> bool {
        let Some(finder) = &self.finder else {
            return false;
        };
        // Cheapest decisive test first: most records that mention the needle say so early.
        finder.find(text).is_none()
            && (memchr::memchr(b'\\', text).is_none() || self.escape.find(text).is_none())
            && has_object_shape(text)
    }
}

fn is_json_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// `serde_json` refuses documents nested deeper than this.
const PARSER_DEPTH_LIMIT: u32 = 128;

/// Starts with `{`, ends with `}` (JSON whitespace aside), balances its braces, cannot nest deeper
/// than the parser takes, and no `}` is followed by `{`.
fn has_object_shape(text: &[u8]) -> bool {
    let start = text.iter().position(|&byte| !is_json_whitespace(byte));
    let end = text.iter().rposition(|&byte| !is_json_whitespace(byte));
    let (Some(start), Some(end)) = (start, end) else {
        return false;
    };
    if end <= start || text[start] != b'{' || text[end] != b'}' {
        return false;
    }
    // One SIMD pass over the brackets (a record has a few dozen): balance, depth bound, glue.
    let (mut opens, mut closes, mut brackets) = (0_u32, 0_u32, 0_u32);
    for at in memchr::memchr3_iter(b'{', b'}', b'[', text) {
        match text[at] {
            b'{' => opens += 1,
            b'[' => brackets += 1,
            _ => {
                closes += 1;
                if at < end {
                    let next = text[at + 1..=end]
                        .iter()
                        .find(|&&byte| !is_json_whitespace(byte));
                    if next == Some(&b'{') {
                        return false;
                    }
                }
            }
        }
    }
    opens == closes && opens + brackets < PARSER_DEPTH_LIMIT
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL;

    #[test]
    fn takes_the_needle_from_the_query() {
        let needle = Needle::for_query(LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL.query);
        // Not `aws.cloudtrail` (the first exact value): raw records do not spell the dataset.
        assert!(needle.finder.is_some());
        assert!(!needle.skips(br#"{"eventSource": "lambda.amazonaws.com"}"#));
        assert!(!needle.skips(br#"{"eventSource": "lambda\u002eamazonaws.com"}"#));
        assert!(!needle.skips(br#"{"eventSource": "s3.amazonaws.com""#));
        assert!(needle.skips(br#"{"eventSource": "s3.amazonaws.com"}"#));
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
