//! First-seen history: the latest event time of every term, bounded, least recently updated evicted
//! first.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;

use siphasher::sip::SipHasher13;

use crate::bytes;
use crate::snapshot::Entries;
use crate::time::EpochMillis;

pub use newterms_snapshot::term::{TermKey, decode_term, is_term};

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

/// No entry: the end of the recency list.
const NIL: u32 = u32::MAX;

/// A place in a history's recency order (see [`History::at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(u32);

/// One term: where its bytes are in the arena, its neighbours in recency order, its latest time.
/// 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u32,
    len: u32,
    /// The next entry seen less recently, or [`NIL`].
    older: u32,
    /// The next entry seen more recently, or [`NIL`].
    newer: u32,
    last_seen: EpochMillis,
}

/// A term [`History::find_known`] found known: its entry, until the history next changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known(u32);

/// The latest time each term was seen, bounded, least recently updated evicted first.
///
/// Built for a million terms in little memory: the terms' bytes live back to back in one arena; an
/// entry array holds, per term, its place in the arena, its latest time and intrusive recency links
/// (u32 indices); an open-addressing table of `u64` slots (entry index + the low 32 bits of the term's
/// keyed SipHash, which also give the home slot, so that nothing is hashed again on growth or removal;
/// linear probing, backward-shift deletion, at most 4/5 full) finds them. About 24 + 10 to 20 bytes per
/// term beyond its own bytes, where an `LruCache<Box<[u8]>, i64>` takes ~100.
pub struct History {
    hasher: KeyedHasher,
    /// 0 for an empty slot, else `(hash as u32) << 32 | (index + 1)`.
    table: Vec<u64>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
    /// Arena bytes of evicted terms, reclaimed by compaction.
    garbage: usize,
    /// Most recently updated.
    newest: u32,
    /// Least recently updated.
    oldest: u32,
    capacity: NonZeroUsize,
    evictions: u64,
    /// Counts changes, so that a reader walking the history in several calls (a snapshot read in
    /// pieces) can tell that it changed under it.
    generation: u64,
}

impl History {
    /// An empty history of at most `capacity` terms.
    pub fn new(capacity: NonZeroUsize, hash_key: (u64, u64)) -> Self {
        // Nothing is allocated up front: a million terms is memory the guest may never need.
        Self {
            hasher: KeyedHasher { key: hash_key },
            table: Vec::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            garbage: 0,
            newest: NIL,
            oldest: NIL,
            capacity,
            evictions: 0,
            generation: 0,
        }
    }

    /// Makes room, in one allocation each, for `terms` more terms of `term_bytes` bytes together
    /// (terms beyond the capacity aside), as a restore knows it will need: no growth steps, no
    /// abandoned smaller blocks left in the guest's memory.
    pub fn reserve(&mut self, terms: usize, term_bytes: usize) {
        let terms = terms.min(self.capacity.get() - self.entries.len().min(self.capacity.get()));
        // Only a hint (a restore's sizes are what the snapshot claims): if memory is short, the
        // history grows as terms arrive instead.
        let _ = self.entries.try_reserve_exact(terms);
        let _ = self.arena.try_reserve_exact(term_bytes);
        let needed = self.entries.len() + terms;
        if needed * 5 > self.table.len() * 4 {
            let size = (needed * 5 / 4 + 1).next_power_of_two().max(16);
            let old = std::mem::replace(&mut self.table, vec![0; size]);
            for value in old.into_iter().filter(|&value| value != 0) {
                self.place_slot(value);
            }
        }
    }

    /// Records that `term` was seen at `time` and says whether it was new within `window_ms`.
    pub fn observe(&mut self, term: &[u8], time: EpochMillis, window_ms: u64) -> bool {
        let hash = self.hash(term);
        if let Some(index) = self.find(term, hash) {
            let new = is_new(
                Some(self.entries[index as usize].last_seen),
                time,
                window_ms,
            );
            self.observe_found(Known(index), time);
            return new;
        }
        self.generation = self.generation.wrapping_add(1);
        self.add(term, hash, time);
        true
    }

    /// Records that `term` was seen at `time` if it is known within `window_ms`, and says so; when
    /// it would be new, changes nothing and returns false.
    pub fn observe_known(&mut self, term: &[u8], time: EpochMillis, window_ms: u64) -> bool {
        let Some(known) = self.find_known(term, time, window_ms) else {
            return false;
        };
        self.observe_found(known, time);
        true
    }

    /// Where `term` is when [`History::observe`] of it at `time` would find it known within
    /// `window_ms` (not new); changes nothing. The answer holds until the history next changes.
    pub fn find_known(&self, term: &[u8], time: EpochMillis, window_ms: u64) -> Option<Known> {
        let index = self.find(term, self.hash(term))?;
        let entry = self.entries.get(index as usize)?;
        (!is_new(Some(entry.last_seen), time, window_ms)).then_some(Known(index))
    }

    /// Records that the term [`History::find_known`] found was seen at `time`, without looking for
    /// it again.
    pub fn observe_found(&mut self, Known(index): Known, time: EpochMillis) {
        if let Some(entry) = self.entries.get_mut(index as usize) {
            entry.last_seen = entry.last_seen.max(time);
            self.promote(index);
            self.generation = self.generation.wrapping_add(1);
        }
    }

    /// Sets the time of `term` and makes it the most recently updated, evicting the least recently
    /// updated term when full (a snapshot's entries, oldest first).
    pub fn insert(&mut self, term: &[u8], time: EpochMillis) {
        self.generation = self.generation.wrapping_add(1);
        let hash = self.hash(term);
        if let Some(index) = self.find(term, hash) {
            self.entries[index as usize].last_seen = time;
            self.promote(index);
        } else {
            self.add(term, hash, time);
        }
    }

    /// Terms with their latest time, least recently updated first.
    pub fn oldest_first(&self) -> impl Iterator<Item = (&[u8], EpochMillis)> {
        let mut cursor = self.oldest_cursor();
        std::iter::from_fn(move || {
            let (term, last_seen, next) = self.at(cursor)?;
            cursor = next;
            Some((term, last_seen))
        })
    }

    /// Where [`History::oldest_first`] starts: a place that outlives a borrow of the history, for
    /// a reader that walks it in several calls. Valid until the history changes.
    pub fn oldest_cursor(&self) -> Cursor {
        Cursor(self.oldest)
    }

    /// The term at `cursor`, its latest time, and the cursor of the next more recently updated
    /// term; `None` past the newest.
    pub fn at(&self, cursor: Cursor) -> Option<(&[u8], EpochMillis, Cursor)> {
        let entry = self.entries.get(cursor.0 as usize)?;
        Some((self.term(entry), entry.last_seen, Cursor(entry.newer)))
    }

    /// How many terms are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no term is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many terms were evicted for room, over the life of this history and the snapshots it was
    /// restored from.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Adds to the eviction count carried over from a snapshot.
    pub fn add_evictions(&mut self, count: u64) {
        self.evictions = self.evictions.saturating_add(count);
        self.generation = self.generation.wrapping_add(1);
    }

    /// Becomes `other` (a restored history), as a change: a reader of the old one sees it ended.
    pub fn replace(&mut self, other: History) {
        let generation = self.generation.max(other.generation).wrapping_add(1);
        *self = other;
        self.generation = generation;
    }

    /// Changes so far: a reader that saw one value knows the history is as it was while the value
    /// stays the same.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes held by this history's own allocations (for measurements).
    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * size_of::<u64>()
            + self.entries.capacity() * size_of::<Entry>()
            + self.arena.capacity()
    }

    /// Bytes of the live terms themselves.
    pub fn term_bytes(&self) -> usize {
        self.arena.len() - self.garbage
    }

    fn hash(&self, term: &[u8]) -> u64 {
        self.hasher.hash_one(term)
    }

    fn term(&self, entry: &Entry) -> &[u8] {
        &self.arena[entry.offset as usize..][..entry.len as usize]
    }

    fn find(&self, term: &[u8], hash: u64) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let tag = hash & 0xffff_ffff;
        let mut slot = hash as usize & mask;
        loop {
            let value = self.table[slot];
            if value == 0 {
                return None;
            }
            if value >> 32 == tag {
                let index = (value as u32).wrapping_sub(1);
                if bytes::equal(self.term(&self.entries[index as usize]), term) {
                    return Some(index);
                }
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Adds an absent term as the most recently updated, evicting the oldest when full.
    fn add(&mut self, term: &[u8], hash: u64, time: EpochMillis) {
        let index = if self.entries.len() >= self.capacity.get() {
            // Full: the oldest entry's index is reused for the new term.
            let victim = self.oldest;
            self.unlink(victim);
            let entry = self.entries[victim as usize];
            self.remove_slot(victim);
            self.garbage += entry.len as usize;
            self.evictions += 1;
            victim
        } else {
            // Grow by a quarter, not double: slack here is memory per term.
            if self.entries.len() == self.entries.capacity() {
                let room = self.capacity.get() - self.entries.len();
                // Never past the capacity: a full history has no slack.
                self.entries
                    .reserve_exact((self.entries.len() / 4).max(64).min(room).max(1));
            }
            self.entries.push(Entry {
                offset: 0,
                len: 0,
                older: NIL,
                newer: NIL,
                last_seen: time,
            });
            (self.entries.len() - 1) as u32
        };
        if self.garbage > 4096 && self.garbage * 2 > self.arena.len() {
            self.compact(index);
        }
        if self.arena.capacity() - self.arena.len() < term.len() {
            self.arena
                .reserve_exact((self.arena.len() / 4).max(term.len()).max(4096));
        }
        let offset = self.arena.len() as u32;
        self.arena.extend_from_slice(term);
        self.entries[index as usize] = Entry {
            offset,
            len: term.len() as u32,
            older: NIL,
            newer: NIL,
            last_seen: time,
        };
        self.link_newest(index);
        self.reserve_slot();
        self.place(index, hash);
    }

    /// Rewrites the arena with the live terms only (`skip` is an entry being replaced).
    fn compact(&mut self, skip: u32) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage + self.arena.len() / 8);
        for (index, entry) in self.entries.iter_mut().enumerate() {
            if index as u32 == skip {
                entry.len = 0;
                entry.offset = 0;
                continue;
            }
            let start = entry.offset as usize;
            entry.offset = arena.len() as u32;
            arena.extend_from_slice(&self.arena[start..start + entry.len as usize]);
        }
        self.arena = arena;
        self.garbage = 0;
    }

    /// Keeps the table at most 4/5 full once every entry is placed.
    fn reserve_slot(&mut self) {
        let needed = self.entries.len();
        if needed * 5 <= self.table.len() * 4 {
            return;
        }
        let size = (needed * 5 / 4 + 1).next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.table, vec![0; size]);
        for value in old.into_iter().filter(|&value| value != 0) {
            self.place_slot(value);
        }
    }

    fn place(&mut self, index: u32, hash: u64) {
        self.place_slot((hash & 0xffff_ffff) << 32 | u64::from(index + 1));
    }

    fn place_slot(&mut self, value: u64) {
        let mask = self.table.len() - 1;
        let mut slot = (value >> 32) as usize & mask;
        while self.table[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.table[slot] = value;
    }

    /// Removes `index` from the table, shifting later entries of its probe run back.
    fn remove_slot(&mut self, index: u32) {
        let mask = self.table.len() - 1;
        // One hash of the victim's bytes finds its slot; the probe run after it needs none.
        let hash = self.hash(self.term(&self.entries[index as usize]));
        let mut slot = hash as usize & mask;
        while self.table[slot] as u32 != index + 1 {
            slot = (slot + 1) & mask;
        }
        let mut hole = slot;
        let mut next = (hole + 1) & mask;
        while self.table[next] != 0 {
            let value = self.table[next];
            let home = (value >> 32) as usize & mask;
            // Move `next` into the hole unless its home lies cyclically in (hole, next].
            let distance_home = next.wrapping_sub(home) & mask;
            let distance_hole = next.wrapping_sub(hole) & mask;
            if distance_home >= distance_hole {
                self.table[hole] = value;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.table[hole] = 0;
    }

    fn unlink(&mut self, index: u32) {
        let Entry { older, newer, .. } = self.entries[index as usize];
        match older {
            NIL => self.oldest = newer,
            older => self.entries[older as usize].newer = newer,
        }
        match newer {
            NIL => self.newest = older,
            newer => self.entries[newer as usize].older = older,
        }
    }

    fn link_newest(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        entry.older = self.newest;
        entry.newer = NIL;
        match self.newest {
            NIL => self.oldest = index,
            newest => self.entries[newest as usize].newer = index,
        }
        self.newest = index;
    }

    fn promote(&mut self, index: u32) {
        if self.newest != index {
            self.unlink(index);
            self.link_newest(index);
        }
    }
}

/// A history is what a snapshot [`crate::snapshot::Writer`] walks.
impl Entries for History {
    type Cursor = Cursor;

    fn len(&self) -> usize {
        History::len(self)
    }

    fn term_bytes(&self) -> usize {
        History::term_bytes(self)
    }

    fn evictions(&self) -> u64 {
        History::evictions(self)
    }

    fn first(&self) -> Cursor {
        self.oldest_cursor()
    }

    fn at(&self, cursor: Cursor) -> Option<(&[u8], EpochMillis, Cursor)> {
        History::at(self, cursor)
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
            assert!(is_term(&key(&values), 2));
        }
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        assert_eq!(decode_term(&key(&["a"]), 2), None);
        assert_eq!(decode_term(&[5, b'a'], 1), None);
        assert_eq!(decode_term(&[0xff; 12], 1), None);
        assert_eq!(decode_term(&[1, 0xff], 1), None);
        assert!(!is_term(&key(&["a"]), 2));
        assert!(!is_term(&[5, b'a'], 1));
        assert!(!is_term(&[0xff; 12], 1));
        assert!(!is_term(&[1, 0xff], 1));
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

    /// The table, links, evictions and compaction against a plain model, over many random steps.
    #[test]
    fn matches_a_plain_lru_model() {
        let capacity = 300;
        let mut history = History::new(NonZeroUsize::new(capacity).unwrap(), (7, 9));
        // Model: (term, last seen), least recently updated first.
        let mut model: Vec<(Vec<u8>, i64)> = Vec::new();
        let mut evictions = 0;
        let mut random = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        for step in 0..60_000_i64 {
            let state = random();
            let id = state % 900;
            let term = key(&[&"x".repeat((id % 40) as usize), &id.to_string()]);
            let time = step / 3 + (state >> 40) as i64 % 50;
            let new = history.observe(&term, time, 100);
            let expected = match model.iter().position(|(known, _)| *known == term) {
                Some(at) => {
                    let (term, last) = model.remove(at);
                    let new = time - last > 100;
                    model.push((term, last.max(time)));
                    new
                }
                None => {
                    model.push((term, time));
                    if model.len() > capacity {
                        model.remove(0);
                        evictions += 1;
                    }
                    true
                }
            };
            assert_eq!(new, expected, "step {step}");
        }
        assert_eq!(history.len(), model.len());
        assert_eq!(history.evictions(), evictions);
        let kept: Vec<(Vec<u8>, i64)> = history
            .oldest_first()
            .map(|(term, time)| (term.to_vec(), time))
            .collect();
        assert_eq!(kept, model);
        assert!(history.term_bytes() <= history.arena.len());
    }

    #[test]
    fn the_snapshot_writer_hands_out_the_encoded_bytes_in_pieces() {
        use crate::snapshot::{Identity, Writer, encode};
        const IDENTITY: Identity<'static> = Identity {
            rule_id: "rule",
            term_signature: "a;b",
            term_arity: 2,
        };
        let mut history = History::new(std::num::NonZeroUsize::new(50).expect("50"), (1, 2));
        let mut key = TermKey::default();
        // Past the capacity, so that evictions and arena compaction happen.
        for round in 0..400_i64 {
            let user = format!("user-{}-{}", round % 70, "x".repeat((round % 9) as usize));
            key.encode(["123456789012", user.as_str()]);
            history.insert(key.as_bytes(), round);
        }
        assert!(history.evictions() > 0);
        let expected = encode(
            &IDENTITY,
            history.evictions(),
            history.len(),
            history.oldest_first(),
        );
        for size in [1, 3, 16, 100, 1 << 20] {
            let mut writer = Writer::new(&IDENTITY, &history);
            assert_eq!(writer.length(), expected.len() as u64);
            let mut bytes = Vec::new();
            loop {
                let piece = writer.read(&history, size);
                assert!(piece.len() <= size);
                if piece.is_empty() {
                    break;
                }
                bytes.extend_from_slice(&piece);
            }
            assert_eq!(bytes, expected, "pieces of {size}");
        }
    }
}
