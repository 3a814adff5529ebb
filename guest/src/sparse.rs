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
    /// The places by path: looked up for every key of a document.
    places: Table<Place>,
    /// Bit `n`: some place's path is `n` bytes long (paths of 256 bytes or more set none: they are
    /// looked up whatever their length), so that most keys are passed over without a hash.
    lengths: [u64; 4],
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
}

impl Place {
    /// The top of a document, above every field.
    pub const TOP: Place = Place {
        field: false,
        above: true,
        raw: false,
        index: 0,
    };
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
        let mut lengths = [0; 4];
        for path in places.keys() {
            if let Some(word) = lengths.get_mut(path.len() / 64) {
                *word |= 1 << (path.len() % 64);
            }
        }
        Self {
            places: Table::new(places.into_iter().map(|(path, place)| (path.into(), place))),
            lengths,
        }
    }

    /// What the key whose place is `path` is to the fields (nothing when `None`).
    #[inline]
    pub fn place(&self, path: &str) -> Option<Place> {
        let length = path.len();
        if length < 256
            && self
                .lengths
                .get(length / 64)
                .is_none_or(|word| word >> (length % 64) & 1 == 0)
        {
            return None;
        }
        self.places.get(path).copied()
    }
}

/// Whether two keys of one object could both hold a value of one field: they are equal, or one is
/// a dotted prefix of the other.
pub fn overlap(one: &str, other: &str) -> bool {
    let (short, long) = if one.len() <= other.len() {
        (one, other)
    } else {
        (other, one)
    };
    let (long, short) = (long.as_bytes(), short.as_bytes());
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

    /// The space of the values, emptied, for the next document.
    pub fn into_scratch(self) -> Vec<(u32, &'static str)> {
        recycled(self.values)
    }
}

impl Fields for SparseFields<'_> {
    fn values_of(&self, field: &str) -> Vec<Cow<'_, str>> {
        let Some(place) = self.reach.place(field).filter(|place| place.field) else {
            return Vec::new();
        };
        self.values
            .iter()
            .filter(|(index, _)| *index == place.index)
            .map(|(_, value)| Cow::Borrowed(*value))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_and_the_paths_above_it_are_places() {
        let reach = Reach::new(["aws.cloudtrail.user_identity.arn", "event.action"]);
        let above = Place {
            above: true,
            ..Place::default()
        };
        let field = |index| Place {
            field: true,
            index,
            ..Place::default()
        };
        assert_eq!(
            reach.place("aws.cloudtrail.user_identity.arn"),
            Some(field(0))
        );
        assert_eq!(reach.place("event.action"), Some(field(1)));
        assert_eq!(reach.place("aws.cloudtrail"), Some(above));
        assert_eq!(reach.place("aws"), Some(above));
        assert_eq!(reach.place("event"), Some(above));
        assert_eq!(reach.place("aws.cloudtrail.user_identity.type"), None);
        assert_eq!(reach.place("action"), None);
        assert!(reach.place("eventName").is_some_and(|place| place.raw));
    }

    #[test]
    fn keys_overlap_when_one_could_hold_the_others_values() {
        assert!(overlap("a", "a"));
        assert!(overlap("a", "a.b"));
        assert!(overlap("a.b.c", "a.b"));
        assert!(!overlap("a", "ab"));
        assert!(!overlap("a.b", "a.c"));
    }
}
