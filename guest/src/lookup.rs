//! Tables of strings fixed when a rule or a pack is built and looked up with an event's text on
//! every event: a document's keys, each in the scope of the object it is in
//! ([`crate::sparse::Reach`]), the values that dispatch a pack's rules ([`crate::kql::pack`]).
//!
//! Open addressing over a power-of-two array, with each entry's hash kept beside it: a lookup
//! compares hashes first, and then bytes with [`bytes::equal`] (WebAssembly's `memcmp`, which `==`
//! on strings calls, compares a byte per step). A dense array of tags (16 bits of each slot's
//! hash, 0 for a free slot) is probed before any entry: most lookups are of keys the table does not
//! hold, and a probe that reads the entries of a table of a pack's places misses the cache. The
//! hash is FxHash's mixing, a word at a time, which does not resist chosen collisions: it need not,
//! since the table never grows from what an event holds, so colliding text can only make one lookup
//! walk the entries of one fixed table.

use crate::bytes;

/// Strings, each with a value; each string within a scope (a number: 0 for tables of one scope),
/// so that one table can hold the keys of many objects ([`crate::sparse::Reach`]).
#[derive(Debug, Clone)]
pub struct Table<V> {
    /// Per slot, [`tag`] of its entry's hash, or 0 when it is free.
    tags: Vec<u16>,
    slots: Vec<Option<Entry<V>>>,
}

#[derive(Debug, Clone)]
struct Entry<V> {
    hash: u64,
    scope: u32,
    key: Box<str>,
    value: V,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Self {
            tags: Vec::new(),
            slots: Vec::new(),
        }
    }
}

impl<V> Table<V> {
    /// The table of `entries`, whose keys are distinct (of two equal keys, lookups find the first).
    pub fn new(entries: impl IntoIterator<Item = (Box<str>, V)>) -> Self {
        Self::scoped(entries.into_iter().map(|(key, value)| (0, key, value)))
    }

    /// The table of `entries` (scope, key, value), whose scoped keys are distinct.
    pub fn scoped(entries: impl IntoIterator<Item = (u32, Box<str>, V)>) -> Self {
        // Counted, not trusted from a size hint: at least half the slots stay free.
        let entries: Vec<(u32, Box<str>, V)> = entries.into_iter().collect();
        let size = (entries.len() * 2).next_power_of_two().max(8);
        let mut tags = vec![0; size];
        let mut slots: Vec<Option<Entry<V>>> = Vec::new();
        slots.resize_with(size, || None);
        let mask = size - 1;
        for (scope, key, value) in entries {
            let hash = hash(scope, key.as_bytes());
            let mut slot = hash as usize & mask;
            while tags.get(slot).is_some_and(|&tag| tag != 0) {
                slot = (slot + 1) & mask;
            }
            if let (Some(free_tag), Some(free)) = (tags.get_mut(slot), slots.get_mut(slot)) {
                *free_tag = tag(hash);
                *free = Some(Entry {
                    hash,
                    scope,
                    key,
                    value,
                });
            }
        }
        Self { tags, slots }
    }

    /// The value of `key` (in scope 0).
    #[inline]
    pub fn get(&self, key: &str) -> Option<&V> {
        self.get_in(0, key.as_bytes())
    }

    /// The value of `key` in `scope`.
    #[inline]
    pub fn get_in(&self, scope: u32, key: &[u8]) -> Option<&V> {
        let hash = hash(scope, key);
        let wanted = tag(hash);
        let mask = self.tags.len().checked_sub(1)?;
        let mut slot = hash as usize & mask;
        // At least one slot is free: the walk ends.
        loop {
            match *self.tags.get(slot)? {
                0 => return None,
                found if found == wanted => {
                    let known = self.slots.get(slot)?.as_ref()?;
                    if known.hash == hash
                        && known.scope == scope
                        && bytes::equal(known.key.as_bytes(), key)
                    {
                        return Some(&known.value);
                    }
                }
                _ => {}
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// A slot's tag: 16 bits of its entry's hash other than those that chose the slot, never 0.
fn tag(hash: u64) -> u16 {
    (hash >> 48) as u16 | 1
}

fn hash(scope: u32, key: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(K);
    let hash = (u64::from(scope) << 32 | key.len() as u64).wrapping_mul(K);
    // Whole words, the last one overlapping the one before: keys up to sixteen bytes, nearly all,
    // take no loop, which in the sandbox costs a check of its deadline, let alone a byte a step.
    let hash = match (key.first_chunk::<8>(), key.last_chunk::<8>()) {
        (Some(first), Some(last)) if key.len() <= 16 => mix(
            mix(hash, u64::from_le_bytes(*first)),
            u64::from_le_bytes(*last),
        ),
        (Some(_), Some(last)) => {
            let (words, _) = key.as_chunks::<8>();
            let hash = words
                .iter()
                .fold(hash, |hash, word| mix(hash, u64::from_le_bytes(*word)));
            mix(hash, u64::from_le_bytes(*last))
        }
        _ => {
            let short = match (key.first_chunk::<4>(), key.last_chunk::<4>()) {
                (Some(first), Some(last)) => {
                    u64::from(u32::from_le_bytes(*first)) << 32
                        | u64::from(u32::from_le_bytes(*last))
                }
                _ => key
                    .iter()
                    .fold(0, |word, &byte| word << 8 | u64::from(byte)),
            };
            mix(hash, short)
        }
    };
    // The slot is the hash's low bits, which a product takes from its factors' low bits only: the
    // high half (where the scope went) is folded in, so that the keys of many scopes spread.
    hash ^ hash >> 32
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

    #[test]
    fn a_key_is_found_in_its_own_scope_only() {
        let table = Table::scoped([(0, "a".into(), 1), (1, "a".into(), 2), (7, "b.c".into(), 3)]);
        assert_eq!(table.get("a"), Some(&1));
        assert_eq!(table.get_in(1, b"a"), Some(&2));
        assert_eq!(table.get_in(7, b"b.c"), Some(&3));
        assert_eq!(table.get_in(2, b"a"), None);
        assert_eq!(table.get("b.c"), None);
    }
}
