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
use std::collections::BTreeMap;

use crate::fields::Fields;
use crate::lookup::Table;
use crate::{bytes, cloudtrail};

/// The places of a set of fields: each field and every dotted path above one.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// The places by path: looked up for each field a query reads.
    places: Table<Place>,
    /// The places by the place of the object a key is in (its number, as the scope) and the key,
    /// which may spell several steps with dots: looked up for every key of a document, hashing the
    /// key rather than the whole path to it.
    steps: Table<Place>,
    /// By the number of a place, bit `n`: some key of an object there steps somewhere and is `n`
    /// bytes long (keys of 256 bytes or more set none: they are looked up whatever their length),
    /// so that most keys are passed over without a hash.
    lengths: Vec<[u64; 4]>,
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
    /// The place's own number, the scope of the keys of an object at it (0: the top).
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
        // Built through a map, so that a pack of many rules builds in linear time.
        let mut places: BTreeMap<&str, Place> = BTreeMap::new();
        let mut count = 0;
        for field in fields {
            let place = places.entry(field).or_default();
            if !place.field {
                place.field = true;
                place.index = count;
                count += 1;
            }
            for (dot, _) in field.match_indices('.') {
                places.entry(&field[..dot]).or_default().above = true;
            }
        }
        for key in cloudtrail::RAW_MARKERS {
            places.entry(key).or_default().raw = true;
        }
        for (number, place) in (1..).zip(places.values_mut()) {
            place.number = number;
        }
        // A key at the place `outer` reaches `outer.key`: every place is reached from the top by
        // its whole path, and from each place above it by the rest of its path.
        let mut steps = Vec::new();
        let mut lengths = vec![[0; 4]; places.len() + 1];
        for (&path, &place) in &places {
            let splits = path.match_indices('.').map(|(dot, _)| dot);
            for (outer, key) in splits
                .filter_map(|dot| Some((places.get(path.get(..dot)?)?, path.get(dot + 1..)?)))
                .chain([(&Place::TOP, path)])
            {
                steps.push((outer.number, key.into(), place));
                let outer_lengths = lengths.get_mut(outer.number as usize);
                if let Some(word) = outer_lengths.and_then(|words| words.get_mut(key.len() / 64)) {
                    *word |= 1 << (key.len() % 64);
                }
            }
        }
        Self {
            places: Table::new(places.into_iter().map(|(path, place)| (path.into(), place))),
            steps: Table::scoped(steps),
            lengths,
        }
    }

    /// What the field or the path above fields `path` is (nothing when `None`).
    #[inline]
    pub fn place(&self, path: &str) -> Option<Place> {
        self.places.get(path).copied()
    }

    /// What a key (as written) of an object at `outer` is to the fields (nothing when `None`).
    #[inline]
    pub fn step(&self, outer: Place, key: &[u8]) -> Option<Place> {
        let length = key.len();
        let lengths = self.lengths.get(outer.number as usize)?;
        if length < 256
            && lengths
                .get(length / 64)
                .is_none_or(|word| word >> (length % 64) & 1 == 0)
        {
            return None;
        }
        self.steps.get_in(outer.number, key).copied()
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

    /// The number of the field `field` in the reach, when it reads it.
    pub fn number_of(reach: &Reach, field: &str) -> Option<u32> {
        reach
            .place(field)
            .filter(|place| place.field)
            .map(|place| place.index)
    }

    /// The space of the values, emptied, for the next document.
    pub fn into_scratch(self) -> Vec<(u32, &'static str)> {
        recycled(self.values)
    }
}

impl Fields for SparseFields<'_> {
    fn values_of(&self, field: &str) -> Vec<Cow<'_, str>> {
        let Some(number) = SparseFields::number_of(self.reach, field) else {
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
