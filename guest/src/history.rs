//! First-seen history: the latest event time of every term, bounded, least recently updated evicted
//! first.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;

use lru::LruCache;
use siphasher::sip::SipHasher13;

use crate::time::EpochMillis;

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

/// SipHash-1-3 keyed by the host: term values come from logs an attacker may write into, and
/// wasm32-unknown-unknown has no randomness of its own to seed a hasher with.
#[derive(Debug, Clone, Copy)]
pub struct KeyedHasher {
    key: (u64, u64),
}

impl BuildHasher for KeyedHasher {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.key.0, self.key.1)
    }
}

/// Whether an event's term is new, given when the term was last seen.
pub fn is_new(last_seen: Option<EpochMillis>, time: EpochMillis, window_ms: u64) -> bool {
    match last_seen {
        None => true,
        // i128: times are bounded, but the subtraction must not be able to wrap whatever they are.
        Some(last_seen) => i128::from(time) - i128::from(last_seen) > i128::from(window_ms),
    }
}

/// The latest time each term was seen.
pub struct History {
    terms: LruCache<Box<[u8]>, EpochMillis, KeyedHasher>,
    capacity: NonZeroUsize,
    evictions: u64,
}

impl History {
    /// An empty history of at most `capacity` terms.
    pub fn new(capacity: NonZeroUsize, hash_key: (u64, u64)) -> Self {
        Self {
            // Unbounded underneath, bounded by hand: a bounded LruCache allocates its full capacity
            // up front, which for a million terms is memory the guest may never need.
            terms: LruCache::unbounded_with_hasher(KeyedHasher { key: hash_key }),
            capacity,
            evictions: 0,
        }
    }

    /// Records that `term` was seen at `time` and says whether it was new within `window_ms`.
    pub fn observe(&mut self, term: &[u8], time: EpochMillis, window_ms: u64) -> bool {
        if let Some(last_seen) = self.terms.get_mut(term) {
            let new = is_new(Some(*last_seen), time, window_ms);
            *last_seen = (*last_seen).max(time);
            return new;
        }
        self.insert(term.into(), time);
        true
    }

    /// Adds a term known to be absent, evicting the least recently updated one when full.
    pub fn insert(&mut self, term: Box<[u8]>, time: EpochMillis) {
        self.terms.put(term, time);
        while self.terms.len() > self.capacity.get() {
            self.terms.pop_lru();
            self.evictions += 1;
        }
    }

    /// Terms with their latest time, least recently updated first.
    pub fn oldest_first(&self) -> impl Iterator<Item = (&[u8], EpochMillis)> {
        self.terms.iter().rev().map(|(term, time)| (&**term, *time))
    }

    /// How many terms are kept.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether no term is kept.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// How many terms were evicted for room, over the life of this history and the snapshots it was
    /// restored from.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Adds to the eviction count carried over from a snapshot.
    pub fn add_evictions(&mut self, count: u64) {
        self.evictions = self.evictions.saturating_add(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(values: &[&str]) -> Vec<u8> {
        let mut key = TermKey::default();
        key.encode(values.iter().copied());
        key.as_bytes().to_vec()
    }

    #[test]
    fn term_keys_round_trip_and_stay_apart() {
        let long = "x".repeat(300);
        for values in [
            vec!["ab", "c"],
            vec!["a", "bc"],
            vec!["", "\u{0}é"],
            vec![&long, "y"],
        ] {
            assert_eq!(decode_term(&key(&values), 2), Some(values.clone()));
        }
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(decode_term(&key(&["a"]), 2), None);
        assert_eq!(decode_term(&[5, b'a'], 1), None);
        assert_eq!(decode_term(&[0xff; 12], 1), None);
        assert_eq!(decode_term(&[1, 0xff], 1), None);
    }

    #[test]
    fn window_boundary_is_inclusive() {
        assert!(is_new(None, 0, 10));
        assert!(!is_new(Some(0), 10, 10));
        assert!(is_new(Some(0), 11, 10));
        assert!(!is_new(Some(20), 5, 10));
        assert!(is_new(Some(i64::MIN), i64::MAX, u64::MAX - 1));
    }

    #[test]
    fn keeps_the_latest_time() {
        let mut history = History::new(NonZeroUsize::MIN.saturating_add(9), (1, 2));
        let term = key(&["1", "alice"]);
        assert!(history.observe(&term, 100, 10));
        assert!(!history.observe(&term, 50, 10));
        assert!(!history.observe(&term, 110, 10));
        assert!(history.observe(&term, 121, 10));
    }

    #[test]
    fn evicts_least_recently_updated() {
        let mut history = History::new(NonZeroUsize::MIN.saturating_add(1), (0, 0));
        let (a, b, c) = (key(&["a"]), key(&["b"]), key(&["c"]));
        history.observe(&a, 1, 100);
        history.observe(&b, 2, 100);
        history.observe(&a, 3, 100);
        history.observe(&c, 4, 100);
        assert_eq!(history.evictions(), 1);
        let kept: Vec<_> = history
            .oldest_first()
            .map(|(term, _)| term.to_vec())
            .collect();
        assert_eq!(kept, [a.clone(), c]);
        assert!(history.observe(&b, 5, 100), "an evicted term is new again");
    }
}
