//! A bucket's events as `Rule.route_file` hands them to an engine and `Rule.process_routed` takes
//! them back: per event its time, its place in its file and its text, in one byte string per file
//! and bucket, so that an engine moves a few large records instead of one per event.
//!
//! Each event: time (i64, milliseconds; `i64::MIN` for none), position (u64), text length (u32),
//! all little endian, then the text. Only this module writes and reads it.

use std::collections::BTreeMap;

const HEADER: usize = 8 + 8 + 4;

/// Events being routed, per bucket.
#[derive(Default)]
pub struct Routed {
    buckets: BTreeMap<u32, Vec<u8>>,
}

impl Routed {
    /// One event: to each of `buckets`, or to bucket 0 when it has none (it changes no history;
    /// bucket 0 reports its refusal, once).
    pub fn add(&mut self, buckets: &[u32], time: Option<i64>, position: u64, text: &str) {
        let time = time.unwrap_or(i64::MIN);
        for &bucket in if buckets.is_empty() {
            &[0][..]
        } else {
            buckets
        } {
            let bytes = self.buckets.entry(bucket).or_default();
            bytes.extend_from_slice(&time.to_le_bytes());
            bytes.extend_from_slice(&position.to_le_bytes());
            bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
            bytes.extend_from_slice(text.as_bytes());
        }
    }

    /// (bucket, its events' bytes), by bucket.
    pub fn into_buckets(self) -> Vec<(u32, Vec<u8>)> {
        self.buckets.into_iter().collect()
    }
}

/// The events of `parts` (input index, routed bytes) in a hunt's order: time, then input, then
/// position; or why the bytes are not `Routed`'s.
pub fn ordered(parts: &[(u32, Vec<u8>)]) -> Result<Vec<&[u8]>, String> {
    let mut events: Vec<(i64, u32, u64, &[u8])> = Vec::new();
    for (input, bytes) in parts {
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let (header, after) = rest
                .split_at_checked(HEADER)
                .ok_or("routed events end in the middle of an event")?;
            let number = |range: std::ops::Range<usize>| {
                let mut word = [0_u8; 8];
                word[..range.len()].copy_from_slice(&header[range]);
                u64::from_le_bytes(word)
            };
            let time = number(0..8) as i64;
            let position = number(8..16);
            let length = number(16..20) as usize;
            let (text, after) = after
                .split_at_checked(length)
                .ok_or("routed events end in the middle of an event")?;
            events.push((time, *input, position, text));
            rest = after;
        }
    }
    events.sort_unstable_by_key(|&(time, input, position, _)| (time, input, position));
    Ok(events.into_iter().map(|(.., text)| text).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_by_time_then_input_then_position() {
        let mut first = Routed::default();
        first.add(&[1], Some(20), 0, "a");
        first.add(&[], None, 1, "no time");
        first.add(&[1, 2], Some(10), 2, "b");
        let mut second = Routed::default();
        second.add(&[1], Some(10), 0, "c");
        let first = first.into_buckets();
        let second = second.into_buckets();
        assert_eq!(
            first.iter().map(|(bucket, _)| *bucket).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let parts = vec![(1, second[0].1.clone()), (0, first[1].1.clone())];
        let texts = ordered(&parts).unwrap_or_default();
        assert_eq!(texts, [&b"b"[..], b"c", b"a"]);
        assert!(ordered(&[(0, vec![1, 2, 3])]).is_err());
    }
}
