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
        for value in values {
            let mut length = value.len();
            loop {
                let low = (length & 0x7f) as u8;
                length >>= 7;
                if length == 0 {
                    self.0.push(low);
                    break;
                }
                self.0.push(low | 0x80);
            }
            self.0.extend_from_slice(value.as_bytes());
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
        let mut length: usize = 0;
        let mut shift = 0;
        loop {
            let (&byte, rest) = bytes.split_first()?;
            bytes = rest;
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
        values.push(std::str::from_utf8(value).ok()?);
        bytes = rest;
    }
    (values.len() == count).then_some(values)
}

/// Whether `bytes` encode `count` UTF-8 values, like [`decode_term`] but without allocating.
pub fn is_term(mut bytes: &[u8], count: usize) -> bool {
    let mut values = 0;
    while !bytes.is_empty() {
        let mut length: usize = 0;
        let mut shift = 0;
        loop {
            let Some((&byte, rest)) = bytes.split_first() else {
                return false;
            };
            bytes = rest;
            if shift >= usize::BITS {
                return false;
            }
            let Some(part) = usize::from(byte & 0x7f).checked_shl(shift) else {
                return false;
            };
            length |= part;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if length > bytes.len() {
            return false;
        }
        let (value, rest) = bytes.split_at(length);
        if std::str::from_utf8(value).is_err() {
            return false;
        }
        bytes = rest;
        values += 1;
    }
    values == count
}
