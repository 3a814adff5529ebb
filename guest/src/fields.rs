//! Reading ECS fields out of a JSON document the way Elasticsearch indexes them.
//!
//! A field such as `aws.cloudtrail.user_identity.arn` may be written as nested objects, as one dotted
//! key, or any mix of the two (`{"aws.cloudtrail": {"user_identity": {"arn": …}}}`); arrays anywhere on
//! the way are flattened, so a field can have several values. Like the CloudTrail ingest pipeline, `null`
//! and `""` are not values. Numbers and booleans are values in their JSON spelling, as a `keyword` field
//! indexes them; objects are not values of a keyword field.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Appends every value of `field` in `document` to `values`.
pub fn collect<'a>(document: &'a Value, field: &str, values: &mut Vec<Cow<'a, str>>) {
    match document {
        Value::Object(map) => collect_in_object(map, field, values),
        Value::Array(items) => {
            for item in items {
                collect(item, field, values);
            }
        }
        _ => {}
    }
}

/// Every value of `field` in `document`, in document order.
pub fn values<'a>(document: &'a Value, field: &str) -> Vec<Cow<'a, str>> {
    let mut values = Vec::new();
    collect(document, field, &mut values);
    values
}

/// Whether `field` has at least one value (KQL `field: *`).
pub fn exists(document: &Value, field: &str) -> bool {
    // Rarely more than one value: collecting them all costs little and keeps one definition.
    !values(document, field).is_empty()
}

/// A document whose fields can be read as [`values`] reads a JSON document's: the JSON document
/// itself, or the values a sparse reading of one kept ([`crate::sparse::SparseFields`]).
pub trait Fields {
    /// Every value of `field`, in the order [`values`] gives them.
    fn values_of(&self, field: &str) -> Vec<Cow<'_, str>>;
}

impl Fields for Value {
    fn values_of(&self, field: &str) -> Vec<Cow<'_, str>> {
        values(self, field)
    }
}

/// An ECS document as the query reads it: it can always tell.
pub struct Document<'a>(pub &'a Value);

impl crate::definition::QueryFields for Document<'_> {
    fn any_value(&self, field: &str, test: impl Fn(&str) -> bool) -> Option<bool> {
        Some(values(self.0, field).iter().any(|found| test(found)))
    }

    fn exists(&self, field: &str) -> Option<bool> {
        Some(exists(self.0, field))
    }
}

fn collect_in_object<'a>(map: &'a Map<String, Value>, field: &str, values: &mut Vec<Cow<'a, str>>) {
    if let Some(value) = map.get(field) {
        push_scalars(value, values);
    }
    // Every dotted prefix of the field may be a key holding the rest of it.
    for (split, _) in field.match_indices('.') {
        if let Some(child) = map.get(&field[..split]) {
            collect(child, &field[split + 1..], values);
        }
    }
}

fn push_scalars<'a>(value: &'a Value, values: &mut Vec<Cow<'a, str>>) {
    match value {
        Value::String(text) if !text.is_empty() => values.push(Cow::Borrowed(text)),
        Value::Number(number) => values.push(Cow::Owned(number.to_string())),
        Value::Bool(flag) => values.push(Cow::Borrowed(if *flag { "true" } else { "false" })),
        Value::Array(items) => {
            for item in items {
                push_scalars(item, values);
            }
        }
        Value::String(_) | Value::Null | Value::Object(_) => {}
    }
}

/// Whether the ingest pipeline would drop this value: `null`, `""`, and objects or arrays that hold
/// nothing else.
pub fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.iter().all(is_blank),
        Value::Object(map) => map.values().all(is_blank),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A copy of `value` without what the ingest pipeline drops (see [`is_blank`]).
pub fn without_blanks(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|item| !is_blank(item))
                .map(without_blanks)
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, child)| !is_blank(child))
                .map(|(key, child)| (key.clone(), without_blanks(child)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Sets `field` (a dotted ECS name) in `document` as nested objects. Other spellings of the field, of
/// part of its path or of fields beneath it are removed, so that the document holds one value for it.
pub fn set(document: &mut Map<String, Value>, field: &str, value: Value) {
    document.retain(|key, _| !shadows(key, field));
    match field.split_once('.') {
        None => {
            document.insert(field.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = document
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                set(child, rest, value);
            }
        }
    }
}

/// `document` as JSON text with `changes` (dotted field, value) made as [`set`] makes them one
/// after another on a copy of it, without the copy: an alert is its event's document with three
/// fields set, and copying the document, then freeing the copy, took ~15 % of an alert's time in
/// WebAssembly. The fields must be distinct and none a part of another's path (`a` beside `a.b`),
/// as an alert's are; `document_with_changes_writes_as_set_on_a_copy` holds it to [`set`].
pub fn to_string_with(document: Option<&Map<String, Value>>, changes: &[(&str, &Value)]) -> String {
    let overlaid = Overlaid::new(document, changes);
    // Writing borrowed values and string keys cannot fail.
    serde_json::to_string(&overlaid).unwrap_or_default()
}

/// A map as [`set`] leaves it after some changes, borrowing what they leave as it was.
struct Overlaid<'a> {
    /// In key order, as a map of the document writes them.
    entries: Vec<(&'a str, Piece<'a>)>,
}

enum Piece<'a> {
    Kept(&'a Value),
    Overlaid(Overlaid<'a>),
}

impl<'a> Overlaid<'a> {
    fn new(base: Option<&'a Map<String, Value>>, changes: &[(&'a str, &'a Value)]) -> Self {
        let head = |field: &'a str| field.split_once('.').map_or(field, |(head, _)| head);
        let mut entries: Vec<(&'a str, Piece<'a>)> = base
            .into_iter()
            .flatten()
            .filter(|(key, _)| {
                // What `set` removes, and the objects a change goes into (made anew below).
                !changes
                    .iter()
                    .any(|&(field, _)| shadows(key, field) || head(field) == key.as_str())
            })
            .map(|(key, value)| (key.as_str(), Piece::Kept(value)))
            .collect();
        for (index, &(field, value)) in changes.iter().enumerate() {
            let Some((outer, _)) = field.split_once('.') else {
                entries.push((field, Piece::Kept(value)));
                continue;
            };
            if changes[..index]
                .iter()
                .any(|&(before, _)| head(before) == outer)
            {
                continue;
            }
            let inner: Vec<(&'a str, &'a Value)> = changes
                .iter()
                .filter_map(|&(field, value)| {
                    let (head, rest) = field.split_once('.')?;
                    (head == outer).then_some((rest, value))
                })
                .collect();
            // `set` goes into the object there, or makes a new one in place of anything else.
            let object = base
                .and_then(|base| base.get(outer))
                .and_then(Value::as_object);
            entries.push((outer, Piece::Overlaid(Overlaid::new(object, &inner))));
        }
        entries.sort_unstable_by_key(|(key, _)| *key);
        Self { entries }
    }
}

impl serde::Serialize for Overlaid<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, piece) in &self.entries {
            match piece {
                Piece::Kept(value) => map.serialize_entry(key, value)?,
                Piece::Overlaid(inner) => map.serialize_entry(key, inner)?,
            }
        }
        map.end()
    }
}

/// Whether the key `key` spells `field`, a dotted part of its path, or a field beneath it.
fn shadows(key: &str, field: &str) -> bool {
    let is_path_prefix = |short: &str, long: &str| {
        long.len() > short.len() && long.starts_with(short) && long.as_bytes()[short.len()] == b'.'
    };
    key == field || (key.contains('.') && is_path_prefix(key, field)) || is_path_prefix(field, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(document: &Value, field: &str) -> Vec<String> {
        values(document, field)
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    #[test]
    fn reads_nested_dotted_and_mixed_spellings() {
        let nested = json!({"user": {"name": "alice"}});
        let dotted = json!({"user.name": "alice"});
        let mixed = json!({"aws.cloudtrail": {"user_identity": {"arn": "a"}}});
        assert_eq!(strings(&nested, "user.name"), ["alice"]);
        assert_eq!(strings(&dotted, "user.name"), ["alice"]);
        assert_eq!(strings(&mixed, "aws.cloudtrail.user_identity.arn"), ["a"]);
    }

    #[test]
    fn collects_every_spelling_and_array_element() {
        let document = json!({
            "user": [{"name": "a"}, {"name": ["b", null, ""]}],
            "user.name": "c",
        });
        let mut found = strings(&document, "user.name");
        found.sort();
        assert_eq!(found, ["a", "b", "c"]);
    }

    #[test]
    fn blanks_and_objects_are_not_values() {
        let document = json!({"a": null, "b": "", "c": [], "d": [null], "e": {"x": 1}});
        for field in ["a", "b", "c", "d", "e", "missing", "a.b"] {
            assert!(!exists(&document, field), "{field}");
        }
    }

    #[test]
    fn scalars_keep_their_json_spelling() {
        let document = json!({"n": 123456789012_u64, "f": 1.5, "t": true});
        assert_eq!(strings(&document, "n"), ["123456789012"]);
        assert_eq!(strings(&document, "f"), ["1.5"]);
        assert_eq!(strings(&document, "t"), ["true"]);
    }

    #[test]
    fn pipeline_drops_blank_values() {
        let raw = json!({"a": {"b": null, "c": ""}, "d": [null, 1, {}], "e": "x"});
        assert_eq!(without_blanks(&raw), json!({"d": [1], "e": "x"}));
    }

    #[test]
    fn set_replaces_every_spelling() {
        let mut document = json!({"event.kind": "event", "event": {"id": "1"}});
        let Value::Object(map) = &mut document else {
            unreachable!()
        };
        set(map, "event.kind", json!("signal"));
        assert_eq!(document, json!({"event": {"id": "1", "kind": "signal"}}));

        let mut document = json!({"event": "not an object"});
        let Value::Object(map) = &mut document else {
            unreachable!()
        };
        set(map, "event.kind", json!("signal"));
        assert_eq!(document, json!({"event": {"kind": "signal"}}));
    }

    /// `to_string_with` writes what `set` leaves on a copy, on documents made of every spelling
    /// that shadows an alert's fields or holds them: dotted keys, keys beneath them, the objects
    /// they go into missing, holding them already, or not objects.
    #[test]
    fn document_with_changes_writes_as_set_on_a_copy() {
        let keys = [
            "event",
            "event.kind",
            "event.original",
            "event.kind.x",
            "event.id",
            "eventx",
            "kibana",
            "kibana.alert",
            "kibana.alert.y",
            "kibana.x",
            "kibana_",
            "a",
            "z",
            "~",
            "",
        ];
        let inner_keys = [
            "kind", "original", "alert", "id", "kind.z", "alert.w", "x", "kindly",
        ];
        let values = |seed: u64| -> Value {
            match seed % 6 {
                0 => json!("text"),
                1 => json!(7),
                2 => Value::Null,
                3 => json!([1, {"kind": 2}]),
                _ => Value::Object(
                    inner_keys
                        .iter()
                        .enumerate()
                        .filter(|(bit, _)| seed >> (3 + bit) & 1 == 1)
                        .map(|(bit, key)| ((*key).to_owned(), json!(bit)))
                        .collect(),
                ),
            }
        };
        let alert = json!({"uuid": "u", "rule": {"name": "n"}});
        let (original, kind) = (json!("{\"raw\":1}"), json!("signal"));
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..5_000 {
            let mut document = Map::new();
            for key in keys {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                if state >> 60 < 6 {
                    document.insert(key.to_owned(), values(state >> 20));
                }
            }
            let mut changes = vec![("event.kind", &kind), ("kibana.alert", &alert)];
            if state >> 59 & 1 == 1 {
                changes.insert(0, ("event.original", &original));
            }
            let mut copy = document.clone();
            for &(field, value) in &changes {
                set(&mut copy, field, value.clone());
            }
            let expected = Value::Object(copy).to_string();
            assert_eq!(to_string_with(Some(&document), &changes), expected);
        }
        let mut empty = Map::new();
        set(&mut empty, "event.kind", kind.clone());
        assert_eq!(
            to_string_with(None, &[("event.kind", &kind)]),
            Value::Object(empty).to_string()
        );
    }
}
