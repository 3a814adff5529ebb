//! Comparing byte strings a word at a time.
//!
//! On WebAssembly, LLVM does not expand a comparison of slices into loads as it does natively: `==`
//! calls compiler-builtins' `memcmp`, a loop of one byte per step. The rule compares short strings
//! (query values, history terms) on every event, so those comparisons go through [`equal`].

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
        let (mut a_rest, mut b_rest) = (a, b);
        while let (Some((x, a_next)), Some((y, b_next))) = (
            a_rest.split_first_chunk::<8>(),
            b_rest.split_first_chunk::<8>(),
        ) {
            if u64::from_ne_bytes(*x) != u64::from_ne_bytes(*y) {
                return false;
            }
            (a_rest, b_rest) = (a_next, b_next);
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
        let text = b"lambda.amazonaws.com/Invoke-20150331 eventName";
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
}
