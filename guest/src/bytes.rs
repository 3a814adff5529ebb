//! Comparing byte strings a word at a time.
//!
//! On WebAssembly, LLVM does not expand a comparison of slices into loads as it does natively: `==`
//! calls compiler-builtins' `memcmp`, a loop of one byte per step. The rule compares short strings
//! (query values, history terms) on every event, so those comparisons go through [`equal`]; and
//! finds short byte strings in short values ([`find`]).

use crate::lanes::{Lanes, WIDTH};

/// Whether `a` and `b` hold the same bytes: eight at a time, the last word overlapping the ones
/// before it rather than a loop over the few bytes left. A `const fn`, so that tables checked at
/// compile time (`cloudtrail::copies_verbatim`) compare with it too.
#[inline]
pub const fn equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if let (Some(a_last), Some(b_last)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) {
        // Up to sixteen bytes without a loop: in the sandbox, each loop entered costs a check of
        // its deadline, more than these loads.
        if let (true, Some(a_first), Some(b_first)) =
            (a.len() <= 16, a.first_chunk::<8>(), b.first_chunk::<8>())
        {
            return u64::from_ne_bytes(*a_first) == u64::from_ne_bytes(*b_first)
                && u64::from_ne_bytes(*a_last) == u64::from_ne_bytes(*b_last);
        }
        // Sixteen bytes a step (two words, one test): each step also pays the deadline's check.
        let (mut a_rest, mut b_rest) = (a, b);
        while let (Some((x, a_next)), Some((y, b_next))) = (
            a_rest.split_first_chunk::<16>(),
            b_rest.split_first_chunk::<16>(),
        ) {
            if let (Some((x0, x1)), Some((y0, y1))) =
                (x.split_first_chunk::<8>(), y.split_first_chunk::<8>())
                && let (Some(x1), Some(y1)) = (x1.first_chunk::<8>(), y1.first_chunk::<8>())
                && (u64::from_ne_bytes(*x0) ^ u64::from_ne_bytes(*y0))
                    | (u64::from_ne_bytes(*x1) ^ u64::from_ne_bytes(*y1))
                    != 0
            {
                return false;
            }
            (a_rest, b_rest) = (a_next, b_next);
        }
        // Fewer than sixteen bytes left: the first eight of them, and the last eight of all.
        if let (Some(x), Some(y)) = (a_rest.first_chunk::<8>(), b_rest.first_chunk::<8>())
            && u64::from_ne_bytes(*x) != u64::from_ne_bytes(*y)
        {
            return false;
        }
        return u64::from_ne_bytes(*a_last) == u64::from_ne_bytes(*b_last);
    }
    if let (Some(a_first), Some(b_first), Some(a_last), Some(b_last)) = (
        a.first_chunk::<4>(),
        b.first_chunk::<4>(),
        a.last_chunk::<4>(),
        b.last_chunk::<4>(),
    ) {
        return u32::from_ne_bytes(*a_first) == u32::from_ne_bytes(*b_first)
            && u32::from_ne_bytes(*a_last) == u32::from_ne_bytes(*b_last);
    }
    // Fewer than four bytes each.
    match (a, b) {
        ([], []) => true,
        ([x], [y]) => *x == *y,
        ([x0, x1], [y0, y1]) => *x0 == *y0 && *x1 == *y1,
        ([x0, x1, x2], [y0, y1, y2]) => *x0 == *y0 && *x1 == *y1 && *x2 == *y2,
        _ => false,
    }
}

/// Where `needle` first starts in `haystack`: sixteen places a step, a place a candidate only when
/// both the needle's first and its last byte stand there. For the short values a query's wildcard
/// tests (`*S3 Browser*` on a user agent): memchr's `memmem` cost ~430 instructions a search in the
/// sandbox. A loop of few values, the candidates checked out of it: in a larger function the
/// sandbox's compiler kept the loop's values on the stack.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (Some(&first), Some(&last)) = (needle.first(), needle.last()) else {
        return Some(0);
    };
    let span = needle.len() - 1;
    // The needle may start at `0..places`.
    let places = haystack.len().checked_sub(span)?;
    let Some(last_block) = places.checked_sub(WIDTH) else {
        return find_short(haystack, needle, places);
    };
    let (first, last) = (Lanes::splat(first), Lanes::splat(last));
    let mut at = 0;
    loop {
        // The last block overlaps the one before it rather than reaching past the end.
        let here = at.min(last_block);
        let (Some(starts), Some(ends)) = (
            haystack.get(here..).and_then(<[u8]>::first_chunk::<WIDTH>),
            haystack
                .get(here + span..)
                .and_then(<[u8]>::first_chunk::<WIDTH>),
        ) else {
            return None;
        };
        let candidates = Lanes::load(starts)
            .eq(first)
            .and(Lanes::load(ends).eq(last))
            .bitmask();
        if candidates != 0
            && let Some(found) = first_of(haystack, needle, here, candidates)
        {
            return Some(found);
        }
        if here == last_block {
            return None;
        }
        at += WIDTH;
    }
}

/// The first of `candidates` (bits, from place `here` on) where `needle` starts.
#[inline(never)]
fn first_of(haystack: &[u8], needle: &[u8], here: usize, mut candidates: u16) -> Option<usize> {
    while candidates != 0 {
        let place = here + candidates.trailing_zeros() as usize;
        if starts_at(haystack, needle, place) {
            return Some(place);
        }
        candidates &= candidates - 1;
    }
    None
}

/// [`find`] when `haystack` has fewer places than a vector has lanes: one at a time. Out of
/// line, as [`first_of`], so that `find`'s loop keeps its values in registers.
#[inline(never)]
fn find_short(haystack: &[u8], needle: &[u8], places: usize) -> Option<usize> {
    (0..places).find(|&place| starts_at(haystack, needle, place))
}

/// Whether `needle` starts at `place` in `haystack`.
#[inline(always)]
fn starts_at(haystack: &[u8], needle: &[u8], place: usize) -> bool {
    haystack
        .get(place..place + needle.len())
        .is_some_and(|found| equal(found, needle))
}

/// `bytes` as text, or the offset of the first byte that is not UTF-8. Checked a vector at a time
/// (`simdutf8`; core's check goes a word of four bytes a step in WebAssembly), and again by core
/// only to find where a line that is not UTF-8 stops being so.
pub fn text(bytes: &[u8]) -> Result<&str, u32> {
    simdutf8::basic::from_utf8(bytes).or_else(|_| {
        std::str::from_utf8(bytes)
            .map_err(|error| u32::try_from(error.valid_up_to()).unwrap_or(u32::MAX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_checked_as_core_checks_it() {
        for bytes in [
            &b"plain"[..],
            "caf\u{e9} \u{1f600}".as_bytes(),
            b"ab\xe2\x80\xa6\x80",
            b"{\"a\":\"\xff\"}",
            b"\xc3",
            &[b'x'; 200],
        ] {
            let core = std::str::from_utf8(bytes).map_err(|error| error.valid_up_to() as u32);
            assert_eq!(text(bytes), core, "{bytes:?}");
        }
    }

    #[test]
    fn agrees_with_slice_equality() {
        let text = b"lambda.amazonaws.com/Invoke-20150331 eventName, userAgent: aws-cli/2.15";
        for start in 0..text.len() {
            for end in start..=text.len() {
                let a = &text[start..end];
                for other_start in 0..text.len() {
                    let other_end = (other_start + a.len()).min(text.len());
                    let b = &text[other_start..other_end];
                    assert_eq!(equal(a, b), a == b, "{a:?} {b:?}");
                }
                // A copy elsewhere, and one byte changed at every place.
                let copy = a.to_vec();
                assert!(equal(a, &copy));
                for at in 0..a.len() {
                    let mut changed = copy.clone();
                    changed[at] ^= 1;
                    assert!(!equal(a, &changed));
                }
            }
        }
    }

    #[test]
    fn finds_what_a_naive_search_finds() {
        fn naive(haystack: &[u8], needle: &[u8]) -> Option<usize> {
            (0..=haystack.len().checked_sub(needle.len())?)
                .find(|&at| haystack[at..].starts_with(needle))
        }
        // Every haystack length up to three vectors, the needle at every place, a near miss
        // (its first and last bytes only) before it; zero bytes in needles and haystacks.
        for length in 0..50 {
            for needle in [
                &b"ab"[..],
                b"a",
                b"aXb",
                b"abcdefghijklmnopqrs",
                b"\0a",
                b"a\0",
            ] {
                for at in 0..length {
                    let mut haystack = vec![b'.'; length];
                    for (offset, &byte) in needle.iter().enumerate() {
                        if let Some(place) = haystack.get_mut(at + offset) {
                            *place = byte;
                        }
                    }
                    if at >= needle.len() && needle.len() > 2 {
                        haystack[at - needle.len()] = needle[0];
                        haystack[at - 1] = needle[needle.len() - 1];
                    }
                    assert_eq!(
                        find(&haystack, needle),
                        naive(&haystack, needle),
                        "{haystack:?} {needle:?}"
                    );
                }
                assert_eq!(
                    find(&vec![0; length], needle),
                    naive(&vec![0; length], needle)
                );
                assert_eq!(find(&vec![b'a'; length], b""), Some(0));
            }
        }
    }
}
