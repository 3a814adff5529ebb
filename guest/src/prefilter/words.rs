//! The pass for builds without vectors (the Fluent Bit and Extism modules, which WAMR and Chicory
//! interpret): the first odd byte is found eight bytes at a time in 64-bit words, and the needle by
//! Horspool's search, which reads about one byte in ten of a record. In an interpreter every
//! instruction costs: the vector pass emulated on words takes several instructions per byte, these
//! two take about one and a half.

use super::{LAST_AT, NEEDLE, NEEDLE_BYTES, Survey, odd_bytes};

/// The low seven bits of every byte of a word.
const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
/// The top bit of every byte of a word.
const HIGH: u64 = !LOW;
/// A byte value repeated in every byte of a word.
const fn repeated(byte: u8) -> u64 {
    byte as u64 * 0x0101_0101_0101_0101
}

/// One pass over `text`, a whole record.
pub fn survey(text: &[u8]) -> Survey {
    let odd = first_odd(text);
    let (special, non_ascii) = odd_bytes(text.get(odd..).unwrap_or_default());
    let needle_at = find_needle(text);
    Survey {
        maybe_needle: needle_at.is_some(),
        needle_from: needle_at.unwrap_or(text.len()),
        special,
        non_ascii,
    }
}

/// The first line of `buffer` and the survey of the line trimmed of ASCII whitespace (see
/// [`super::survey_line`]).
pub fn survey_line(buffer: &[u8]) -> (usize, Survey) {
    let odd = first_odd(buffer);
    let end = match buffer.get(odd..) {
        Some([b'\n', ..]) => odd,
        Some(rest) => memchr::memchr(b'\n', rest).map_or(buffer.len(), |at| odd + at),
        None => buffer.len(),
    };
    let line = buffer.get(..end).unwrap_or_default();
    let first = line.len() - line.trim_ascii_start().len();
    let last = line.trim_ascii_end().len();
    let trimmed = line.get(first..last).unwrap_or_default();
    // Nothing before `odd` is odd.
    let (special, non_ascii) = odd_bytes(line.get(odd.max(first)..last).unwrap_or_default());
    let needle_at = find_needle(trimmed);
    let survey = Survey {
        maybe_needle: needle_at.is_some(),
        needle_from: needle_at.unwrap_or(trimmed.len()),
        special,
        non_ascii,
    };
    (end, survey)
}

/// Where the first odd byte of `text` is (a backslash, a byte below 0x20 or above 0x7F), or its
/// length. Four words a step while nothing is odd (one test a step), then word by word.
fn first_odd(text: &[u8]) -> usize {
    let (words, _) = text.as_chunks::<8>();
    let word = |index: usize| {
        words
            .get(index)
            .map_or(0, |bytes| u64::from_le_bytes(*bytes))
    };
    let mut index = 0;
    while index + 4 <= words.len() {
        let odd = odd_in(word(index))
            | odd_in(word(index + 1))
            | odd_in(word(index + 2))
            | odd_in(word(index + 3));
        if odd != 0 {
            break;
        }
        index += 4;
    }
    while index < words.len() {
        let odd = odd_in(word(index));
        if odd != 0 {
            return index * 8 + odd.trailing_zeros() as usize / 8;
        }
        index += 1;
    }
    let done = words.len() * 8;
    let rest = text.get(done..).unwrap_or_default();
    done + rest
        .iter()
        .position(|&byte| byte == b'\\' || !(0x20..0x80).contains(&byte))
        .unwrap_or(rest.len())
}

/// The top bit of each byte of `word` that is odd.
#[inline(always)]
fn odd_in(word: u64) -> u64 {
    // Bit 7 of each byte: its low seven bits are 0x20 or more (no carry leaves a byte).
    let printable = (word & LOW) + repeated(0x80 - 0x20);
    // Bit 7 of each byte: it differs from a backslash (exactly: no borrows, see `lanes`).
    let differs = word ^ repeated(b'\\');
    let not_backslash = ((differs & LOW) + LOW) | differs;
    (!(printable & not_backslash) | word) & HIGH
}

/// How far Horspool's search moves on the byte under the needle's last position: from the needle's
/// last occurrence of that byte before its end to its end, or the needle's length.
const SKIP: [u8; 256] = {
    assert!(
        NEEDLE_BYTES.len() < 256,
        "needle too long for the skip table"
    );
    let mut table = [NEEDLE_BYTES.len() as u8; 256];
    let mut index = 0;
    while index < LAST_AT {
        table[NEEDLE_BYTES[index] as usize] = (LAST_AT - index) as u8;
        index += 1;
    }
    table
};

/// Where the needle is first spelled literally in `text`, if it is.
fn find_needle(text: &[u8]) -> Option<usize> {
    NEEDLE?;
    let mut at = 0;
    while let Some(&under_last) = text.get(at + LAST_AT) {
        if under_last == NEEDLE_BYTES[LAST_AT]
            && text.get(at..at + LAST_AT) == NEEDLE_BYTES.get(..LAST_AT)
        {
            return Some(at);
        }
        at += usize::from(SKIP[usize::from(under_last)]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_odd_byte() {
        let plain = b"{\"a\": \"lambda.amazonaws.com\", \"b\": [1, 2, 3], \"c\": {}}".repeat(3);
        assert_eq!(first_odd(&plain), plain.len());
        for at in 0..plain.len() {
            for odd in [b'\\', b'\n', b'\t', 0, 0x1f, 0x7f + 1, 0xc3, 0xff] {
                let mut text = plain.clone();
                text[at] = odd;
                assert_eq!(first_odd(&text), at, "{odd:#x} at {at}");
            }
            let mut text = plain.clone();
            text[at] = 0x7f;
            assert_eq!(first_odd(&text), plain.len(), "0x7f is not odd");
        }
    }

    #[test]
    fn finds_the_needle_at_every_offset() {
        for length in 0..80 {
            let filler: Vec<u8> = (0..length)
                .map(|i| b"lambda.amazonaws.co m"[i % 21])
                .collect();
            assert_eq!(
                find_needle(&filler),
                None,
                "{}",
                String::from_utf8_lossy(&filler)
            );
            for at in 0..=length {
                let mut text = filler.clone();
                text.splice(at..at, NEEDLE_BYTES.iter().copied());
                assert_eq!(
                    find_needle(&text),
                    Some(at),
                    "{}",
                    String::from_utf8_lossy(&text)
                );
                text.truncate(at + LAST_AT);
                assert_eq!(find_needle(&text[at..]), None);
            }
        }
    }
}
