//! Term combinations: every combination of the term fields' values in an event.

use std::borrow::Cow;

use serde_json::Value;

use super::EventError;
use crate::definition::TermField;
use crate::fields::{self, Fields};

/// The bucket (of `count`) of a term, by its encoded key: how engines spread terms over instances
/// ([`super::Detector::route`] and [`super::Config::partition`] both use it, as a host routing
/// `extract`'s terms does, so they cannot disagree).
pub use newterms_contract::outcome::bucket_of;

/// Most term combinations one event may carry (array-valued term fields multiply).
pub const MAX_TERMS_PER_EVENT: usize = 1_024;

/// Every combination of the term fields' values, or `None` when a field has no value.
pub(super) fn combinations<'a>(
    terms: &[TermField],
    ecs: &'a Value,
) -> Result<Option<Vec<Vec<Cow<'a, str>>>>, EventError> {
    combine(terms.iter().map(|term| {
        term.sources
            .iter()
            .map(|source| fields::values(ecs, source))
            .find(|values| !values.is_empty())
            .unwrap_or_default()
    }))
}

/// Every combination of the values of `term_fields` (ECS fields, read as they are), or `None` when
/// a field has no value: the terms of a rule from a rule file.
pub(crate) fn combinations_of_fields<'a>(
    term_fields: &[String],
    ecs: &'a (impl Fields + ?Sized),
) -> Result<Option<Vec<Vec<Cow<'a, str>>>>, EventError> {
    combine(term_fields.iter().map(|field| ecs.values_of(field)))
}

/// Every combination of one value per field (each field's values de-duplicated first).
fn combine<'a>(
    fields_values: impl Iterator<Item = Vec<Cow<'a, str>>>,
) -> Result<Option<Vec<Vec<Cow<'a, str>>>>, EventError> {
    let mut per_field: Vec<Vec<Cow<'a, str>>> = Vec::new();
    for mut values in fields_values {
        dedup_in_order(&mut values);
        if values.is_empty() {
            return Ok(None);
        }
        per_field.push(values);
    }
    let combinations = per_field
        .iter()
        .try_fold(1_usize, |product, values| product.checked_mul(values.len()))
        .filter(|&count| count <= MAX_TERMS_PER_EVENT);
    let Some(combinations) = combinations else {
        let count = per_field.iter().fold(1_u64, |product, values| {
            product.saturating_mul(values.len() as u64)
        });
        return Err(EventError::TooManyTerms(count));
    };

    // Mixed-radix counting over the fields: the last field varies fastest.
    let mut out = Vec::with_capacity(combinations);
    for index in 0..combinations {
        let mut rest = index;
        let mut values = Vec::with_capacity(per_field.len());
        for field_values in per_field.iter().rev() {
            values.push(field_values[rest % field_values.len()].clone());
            rest /= field_values.len();
        }
        values.reverse();
        out.push(values);
    }
    Ok(Some(out))
}

fn dedup_in_order(values: &mut Vec<Cow<'_, str>>) {
    let mut index = 0;
    while index < values.len() {
        if values[..index].contains(&values[index]) {
            values.remove(index);
        } else {
            index += 1;
        }
    }
}
