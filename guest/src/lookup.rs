//! Tables of strings fixed when a rule or a pack is built and looked up with an event's text on
//! every event: a document's key paths ([`crate::sparse::Reach`]), the values that dispatch a pack's
//! rules ([`crate::kql::pack`]).
//!
//! Open addressing over a power-of-two array, with each entry's hash kept beside it: a lookup
//! compares hashes first, and then bytes with [`bytes::equal`] (WebAssembly's `memcmp`, which `==`
//! on strings calls, compares a byte per step). The hash is FxHash's mixing, a word at a time,
//! which does not resist chosen collisions: it need not, since the table never grows from what an
//! event holds, so colliding text can only make one lookup walk the entries of one fixed table.

use crate::bytes;

/// Strings, each with a value.
#[derive(Debug, Clone)]
pub struct Table<V> {
    slots: Vec<Option<(u64, Box<str>, V)>>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<V> Table<V> {
    /// The table of `entries`, whose keys are distinct (of two equal keys, lookups find the first).
    pub fn new(entries: impl IntoIterator<Item = (Box<str>, V)>) -> Self {
        // Counted, not trusted from a size hint: at least half the slots stay free.
        let entries: Vec<(Box<str>, V)> = entries.into_iter().collect();
        let mut slots: Vec<Option<(u64, Box<str>, V)>> = Vec::new();
        slots.resize_with((entries.len() * 2).next_power_of_two().max(8), || None);
        let mask = slots.len() - 1;
        for (key, value) in entries {
            let hash = hash(&key);
            let mut slot = hash as usize & mask;
            while slots.get(slot).is_some_and(Option::is_some) {
                slot = (slot + 1) & mask;
            }
            if let Some(free) = slots.get_mut(slot) {
                *free = Some((hash, key, value));
            }
        }
        Self { slots }
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        let hash = hash(key);
        let mask = self.slots.len().checked_sub(1)?;
        let mut slot = hash as usize & mask;
        // At least one slot is free: the walk ends.
        loop {
            let (known_hash, known, value) = self.slots.get(slot)?.as_ref()?;
            if *known_hash == hash && bytes::equal(known.as_bytes(), key.as_bytes()) {
                return Some(value);
            }
            slot = (slot + 1) & mask;
        }
    }
}

fn hash(key: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let (words, rest) = key.as_bytes().as_chunks::<8>();
    let mut hash = key.len() as u64;
    for word in words {
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(*word)).wrapping_mul(K);
    }
    for &byte in rest {
        hash = (hash.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<String> = (0..200).map(|n| format!("key.{n}")).collect();
        let table = Table::new(
            keys.iter()
                .enumerate()
                .map(|(n, key)| (key.as_str().into(), n)),
        );
        for (n, key) in keys.iter().enumerate() {
            assert_eq!(table.get(key), Some(&n));
        }
        for missing in ["", "key", "key.200", "key.1 ", "KEY.1"] {
            assert_eq!(table.get(missing), None, "{missing}");
        }
        let empty: Table<()> = Table::default();
        assert_eq!(empty.get("key.1"), None);
    }
}
