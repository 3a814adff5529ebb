//! Terms as snapshots store them: a term's values encoded as one byte string.

/// A term's values, encoded as one byte string: each value as a LEB128 length and its UTF-8 bytes.
///
/// Length prefixes keep `("ab", "c")` and `("a", "bc")` apart whatever bytes the values hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TermKey(Vec<u8>);

impl TermKey {
    /// Builds the key of `values`, reusing this key's buffer.
    pub fn encode<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) {
        self.0.clear();
        Self::append(&mut self.0, values);
    }

    /// Appends the key of `values` to `out`: for a caller that gathers many keys in one buffer,
    /// without a key of its own to allocate and copy from.
    pub fn append<'a>(out: &mut Vec<u8>, values: impl IntoIterator<Item = &'a str>) {
        for value in values {
            let mut length = value.len();
            loop {
                let low = (length & 0x7f) as u8;
                length >>= 7;
                if length == 0 {
                    out.push(low);
                    break;
                }
                out.push(low | 0x80);
            }
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Decodes an encoded term into its values; `None` if the bytes are not an encoding of `count`
/// UTF-8 values.
pub fn decode_term(mut bytes: &[u8], count: usize) -> Option<Vec<&str>> {
    let mut values = Vec::with_capacity(count);
    while !bytes.is_empty() {
        values.push(next_value(&mut bytes)?);
    }
    (values.len() == count).then_some(values)
}

/// Whether `bytes` encode `count` UTF-8 values, like [`decode_term`] but without allocating.
pub fn is_term(mut bytes: &[u8], count: usize) -> bool {
    let mut values = 0;
    while !bytes.is_empty() {
        if next_value(&mut bytes).is_none() {
            return false;
        }
        values += 1;
    }
    values == count
}

/// The value at the front of an encoded term, which `bytes` then starts after; `None` if the bytes
/// there are not a LEB128 length and as many bytes of UTF-8.
fn next_value<'a>(bytes: &mut &'a [u8]) -> Option<&'a str> {
    let mut length: usize = 0;
    let mut shift = 0;
    loop {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        if shift >= usize::BITS {
            return None;
        }
        length |= usize::from(byte & 0x7f).checked_shl(shift)?;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    if length > bytes.len() {
        return None;
    }
    let (value, rest) = bytes.split_at(length);
    *bytes = rest;
    std::str::from_utf8(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_round_trip_and_damage_is_seen() {
        let mut key = TermKey::default();
        let long = "x".repeat(300);
        key.encode(["123", "", long.as_str(), "é"]);
        let bytes = key.as_bytes();
        assert_eq!(
            decode_term(bytes, 4),
            Some(vec!["123", "", long.as_str(), "é"])
        );
        assert!(is_term(bytes, 4));
        assert!(!is_term(bytes, 3));
        for cut in 0..bytes.len() {
            let part = &bytes[..cut];
            for count in 0..5 {
                assert_eq!(is_term(part, count), decode_term(part, count).is_some());
            }
        }
        assert!(!is_term(&[0x80; 12], 1));
        assert!(!is_term(&[2, 0xff, 0xfe], 1));
    }
}
