//! What a rule pack reads of an ECS document, so that one validating pass over its text
//! ([`crate::fastpath::scan_sparse`]) keeps only that: the values of a few dozen fields, as slices of
//! the text, rather than a JSON tree of hundreds of keys.
//!
//! # Why the fields read the same
//! [`crate::fields`] reaches a value through the keys above it, joined by dots (a key may hold dots
//! itself; arrays are passed through). So every value has a place, the dotted path of its keys, and a
//! key matters only when its place is a wanted field (its scalars are values) or lies above one (its
//! objects are searched further); any other key's value holds none of the wanted fields' values. Of
//! one object, `fields` takes a field's values from the key equal to the rest of its name first,
//! then from the keys spelling a dotted prefix of it, shortest first; so that the values kept in the
//! text's order are in that order too, two keys of one object that could both hold a field's values
//! (a key and a duplicate of it, `a` beside `a.b`) leave the document to the parser. So does the
//! last one winning among duplicates, which the parser's map does. Nested queries read whole
//! objects, which are not kept: a rule that gets as far as one is left to the full path.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::fields::Fields;
use crate::lookup::Table;
use crate::{bytes, cloudtrail};

/// The places of a set of fields: each field and every dotted path above one.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// Each place by the number of a place above it (0: the top) and the key that reaches it from
    /// there: its path's parts below that place, joined by dots, up to [`SPELLED`] of them. Looked
    /// up for every key of a document, hashing the key rather than the path to it.
    steps: Table<Place>,
    /// By the number of a place, bit `n`: some key of `steps` from it is `n` bytes long (keys of 256
    /// bytes or more set none: they are looked up whatever their length), so that most keys are
    /// passed over without a hash.
    lengths: Vec<[u64; 4]>,
    /// By the number of a place, bit `n`: some key of more than [`SPELLED`] parts, `n` bytes long,
    /// reaches a place below it, which is found a part at a time.
    walks: Vec<[u64; 4]>,
    /// The fields' places by their names, for reading a field by name in one lookup.
    fields: Table<Place>,
}

/// The most parts a key of one lookup spells: a document's dotted keys have a few, and a name of
/// very many parts (a hostile rule's) makes a number of entries and bytes linear in its length.
const SPELLED: usize = 3;

/// Whether `bits` has bit `n` (always, from 256 on).
fn has(bits: &[u64; 4], n: usize) -> bool {
    bits.get(n / 64)
        .is_none_or(|word| word >> (n % 64) & 1 == 1)
}

fn set(bits: &mut [u64; 4], n: usize) {
    if let Some(word) = bits.get_mut(n / 64) {
        *word |= 1 << (n % 64);
    }
}

/// What a key at a place is to the fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    /// A wanted field, the `index`-th: its scalars are values.
    pub field: bool,
    /// Above a wanted field: its objects are searched.
    pub above: bool,
    /// At the top level, a key that makes the document raw CloudTrail
    /// ([`cloudtrail::is_raw_record`]), which the raw mapping reads whole.
    pub raw: bool,
    /// The field's number, when `field`.
    pub index: u32,
    /// The place's own number, the scope of the parts of the places just below it (0: the top).
    pub number: u32,
}

impl Place {
    /// The top of a document, above every field.
    pub const TOP: Place = Place {
        field: false,
        above: true,
        raw: false,
        index: 0,
        number: 0,
    };

    /// Whether this is the top of a document.
    pub fn is_top(&self) -> bool {
        self.number == 0
    }
}

impl Reach {
    /// The places of `fields` (dotted ECS names).
    pub fn new<'f>(fields: impl IntoIterator<Item = &'f str>) -> Self {
        // Built part by part through a map keyed by the place above and the part, so that a pack
        // of many rules, or a name of many parts, builds in linear time.
        let mut places: HashMap<(u32, &str), Place> = HashMap::new();
        fn below<'m, 'f>(
            places: &'m mut HashMap<(u32, &'f str), Place>,
            outer: u32,
            part: &'f str,
        ) -> &'m mut Place {
            let number = u32::try_from(places.len() + 1).unwrap_or(u32::MAX);
            places.entry((outer, part)).or_insert(Place {
                number,
                ..Place::default()
            })
        }
        let mut count = 0;
        // Each field's parts and the numbers of the places they lead to.
        let mut paths: Vec<(Vec<&str>, Vec<u32>)> = Vec::new();
        let mut named: HashMap<&str, u32> = HashMap::new();
        for field in fields {
            let parts: Vec<&str> = field.split('.').collect();
            let mut numbers = vec![Place::TOP.number];
            for (at, part) in parts.iter().enumerate() {
                let outer = numbers.get(at).copied().unwrap_or_default();
                let place = below(&mut places, outer, part);
                if at + 1 < parts.len() {
                    place.above = true;
                } else if !place.field {
                    place.field = true;
                    place.index = count;
                    count += 1;
                }
                numbers.push(place.number);
            }
            if let Some(&number) = numbers.last() {
                named.entry(field).or_insert(number);
            }
            paths.push((parts, numbers));
        }
        for key in cloudtrail::RAW_MARKERS {
            let marker = below(&mut places, Place::TOP.number, key);
            marker.raw = true;
            paths.push((vec![key], vec![Place::TOP.number, marker.number]));
        }
        // By a place's number (dense from 1), the place.
        let mut place_of = vec![Place::TOP; places.len() + 1];
        for place in places.values() {
            if let Some(slot) = place_of.get_mut(place.number as usize) {
                *slot = *place;
            }
        }
        let mut steps: HashMap<(u32, String), Place> = HashMap::new();
        let mut lengths = vec![[0; 4]; places.len() + 1];
        let mut walks = vec![[0; 4]; places.len() + 1];
        for (parts, numbers) in &paths {
            for end in 1..=parts.len() {
                let Some(place) = numbers
                    .get(end)
                    .and_then(|&number| place_of.get(number as usize))
                else {
                    continue;
                };
                // From each place above, the parts between, as long as a key is worth a bit.
                let mut length = 0;
                for start in (0..end).rev() {
                    length += parts.get(start).map_or(0, |part| part.len())
                        + usize::from(start + 1 < end);
                    let Some(&from) = numbers.get(start) else {
                        break;
                    };
                    let spelled = end - start;
                    if spelled <= SPELLED {
                        let key = parts
                            .get(start..end)
                            .map(|parts| parts.join("."))
                            .unwrap_or_default();
                        steps.entry((from, key)).or_insert(*place);
                        lengths
                            .get_mut(from as usize)
                            .into_iter()
                            .for_each(|bits| set(bits, length));
                    } else if length < 256 {
                        walks
                            .get_mut(from as usize)
                            .into_iter()
                            .for_each(|bits| set(bits, length));
                    } else {
                        break;
                    }
                }
            }
        }
        Self {
            steps: Table::scoped(
                steps
                    .into_iter()
                    .map(|((from, key), place)| (from, key.into(), place)),
            ),
            fields: Table::new(named.into_iter().filter_map(|(field, number)| {
                Some((field.into(), *place_of.get(number as usize)?))
            })),
            lengths,
            walks,
        }
    }

    /// What the field or the path above fields `path` is (nothing when `None`).
    pub fn place(&self, path: &str) -> Option<Place> {
        if let Some(&field) = self.fields.get(path) {
            return Some(field);
        }
        path.split('.').try_fold(Place::TOP, |outer, part| {
            self.steps.get_in(outer.number, part.as_bytes()).copied()
        })
    }

    /// The number of the field `field`, when the reach reads it.
    pub fn field_number(&self, field: &str) -> Option<u32> {
        self.place(field)
            .filter(|place| place.field)
            .map(|place| place.index)
    }

    /// What a key (as written) of an object at `outer` is to the fields (nothing when `None`). A
    /// key may hold dots: `a.b` at `p` is `p.a.b`, as [`crate::fields`] reads it.
    #[inline]
    pub fn step(&self, outer: Place, key: &[u8]) -> Option<Place> {
        let from = outer.number as usize;
        if self
            .lengths
            .get(from)
            .is_some_and(|bits| has(bits, key.len()))
            && let Some(&place) = self.steps.get_in(outer.number, key)
        {
            return Some(place);
        }
        if !self
            .walks
            .get(from)
            .is_some_and(|bits| has(bits, key.len()))
        {
            return None;
        }
        key.split(|&byte| byte == b'.')
            .try_fold(outer, |outer, part| {
                self.steps.get_in(outer.number, part).copied()
            })
    }
}

/// Whether two keys of one object could both hold a value of one field: they are equal, or one is
/// a dotted prefix of the other.
pub fn overlap(one: &[u8], other: &[u8]) -> bool {
    let (short, long) = if one.len() <= other.len() {
        (one, other)
    } else {
        (other, one)
    };
    long.get(..short.len())
        .is_some_and(|start| bytes::equal(start, short))
        && matches!(long.get(short.len()), None | Some(b'.'))
}

/// `space` emptied, as space for items of another lifetime: collecting into a vector of the same
/// layout happens in place, so a scratch vector of borrowed items is kept from one document to the
/// next without an allocation.
#[allow(clippy::unnecessary_filter_map)] // the point: a new item type, no item
pub(crate) fn recycled<T, U>(space: Vec<T>) -> Vec<U> {
    space.into_iter().filter_map(|_| None).collect()
}

/// The values of a [`Reach`]'s fields in one document, in the text's order.
#[derive(Debug)]
pub struct SparseFields<'a> {
    reach: &'a Reach,
    values: Vec<(u32, &'a str)>,
}

impl<'a> SparseFields<'a> {
    /// No values yet, in `scratch`'s space (see [`SparseFields::into_scratch`]).
    pub fn new(reach: &'a Reach, scratch: Vec<(u32, &'static str)>) -> Self {
        // Emptied, the space holds values of any lifetime.
        let values = recycled(scratch);
        Self { reach, values }
    }

    /// A value of the field at `place`.
    pub fn push(&mut self, place: Place, value: &'a str) {
        self.values.push((place.index, value));
    }

    /// The values of the field numbered `number` in the reach, in the text's order.
    pub fn of(&self, number: u32) -> impl Iterator<Item = &'a str> + '_ {
        self.values
            .iter()
            .filter(move |(index, _)| *index == number)
            .map(|(_, value)| *value)
    }

    /// The space of the values, emptied, for the next document.
    pub fn into_scratch(self) -> Vec<(u32, &'static str)> {
        recycled(self.values)
    }
}

impl Fields for SparseFields<'_> {
    fn values_of(&self, field: &str) -> Vec<Cow<'_, str>> {
        let Some(number) = self.reach.field_number(field) else {
            return Vec::new();
        };
        self.of(number).map(Cow::Borrowed).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a place is, without its number.
    fn kind(place: Option<Place>) -> Option<(bool, bool, bool, u32)> {
        place.map(|place| (place.field, place.above, place.raw, place.index))
    }

    #[test]
    fn a_field_and_the_paths_above_it_are_places() {
        let reach = Reach::new(["aws.cloudtrail.user_identity.arn", "event.action"]);
        let above = Some((false, true, false, 0));
        let field = |index| Some((true, false, false, index));
        assert_eq!(
            kind(reach.place("aws.cloudtrail.user_identity.arn")),
            field(0)
        );
        assert_eq!(kind(reach.place("event.action")), field(1));
        assert_eq!(kind(reach.place("aws.cloudtrail")), above);
        assert_eq!(kind(reach.place("aws")), above);
        assert_eq!(kind(reach.place("event")), above);
        assert_eq!(reach.place("aws.cloudtrail.user_identity.type"), None);
        assert_eq!(reach.place("action"), None);
        assert!(reach.place("eventName").is_some_and(|place| place.raw));
    }

    #[test]
    fn a_key_steps_from_its_object_to_the_place_of_its_path() {
        let reach = Reach::new(["aws.cloudtrail.user_identity.arn", "event.action"]);
        let place = |path: &str| reach.place(path);
        let step = |outer: Place, key: &str| reach.step(outer, key.as_bytes());
        // Every place from the top by its whole path, and from each place above it by the rest.
        for path in [
            "aws",
            "aws.cloudtrail",
            "aws.cloudtrail.user_identity.arn",
            "event.action",
        ] {
            assert_eq!(step(Place::TOP, path), place(path), "{path}");
        }
        let aws = place("aws").unwrap();
        let cloudtrail = place("aws.cloudtrail").unwrap();
        let arn = place("aws.cloudtrail.user_identity.arn");
        assert_eq!(step(aws, "cloudtrail"), Some(cloudtrail));
        assert_eq!(step(aws, "cloudtrail.user_identity.arn"), arn);
        assert_eq!(step(cloudtrail, "user_identity.arn"), arn);
        assert_eq!(
            step(place("aws.cloudtrail.user_identity").unwrap(), "arn"),
            arn
        );
        // Nothing else: not a path below the object, and not a path of another object.
        assert_eq!(step(aws, "aws"), None);
        assert_eq!(step(aws, "action"), None);
        assert_eq!(step(place("event").unwrap(), "cloudtrail"), None);
        assert_eq!(step(cloudtrail, "user_identity.type"), None);
        assert!(step(Place::TOP, "eventName").is_some_and(|place| place.raw));
        assert_eq!(step(aws, "eventName"), None);
    }

    #[test]
    fn keys_overlap_when_one_could_hold_the_others_values() {
        assert!(overlap(b"a", b"a"));
        assert!(overlap(b"a", b"a.b"));
        assert!(overlap(b"a.b.c", b"a.b"));
        assert!(!overlap(b"a", b"ab"));
        assert!(!overlap(b"a.b", b"a.c"));
    }
}
