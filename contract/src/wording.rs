//! What the rule's refusals say to people: one wording for the rule crate's errors (which the Extism
//! plugin reports as text) and the host's error types. Each side matches its own error type (the
//! rule's, or the host's view of the WIT's) and says it with these.

use std::fmt;

/// Not JSON (or nested too deep): the parser's message.
pub fn malformed_json(f: &mut fmt::Formatter<'_>, why: &str) -> fmt::Result {
    write!(f, "malformed JSON: {why}")
}

/// JSON but not an object.
pub fn not_an_object(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("not a JSON object")
}

/// Matches the query but has no time.
pub fn missing_time(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("matching event without a time (@timestamp or eventTime)")
}

/// Matches the query but its time does not parse.
pub fn invalid_time(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    write!(f, "matching event with an unreadable time {value:?}")
}

/// More term combinations than the rule takes.
pub fn too_many_terms(f: &mut fmt::Formatter<'_>, count: u64) -> fmt::Result {
    write!(
        f,
        "{count} term combinations in one event is more than the rule takes"
    )
}

/// A line that is not UTF-8, and where.
pub fn not_utf8(f: &mut fmt::Formatter<'_>, offset: u32) -> fmt::Result {
    write!(f, "not UTF-8 (invalid byte at {offset})")
}

/// A capacity of zero.
pub fn zero_capacity(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("the history capacity must be at least 1")
}

/// A window the rule does not take.
pub fn invalid_window(f: &mut fmt::Formatter<'_>, window_ms: u64) -> fmt::Result {
    write!(f, "a window of {window_ms} ms is refused")
}

/// An exception without a field or values.
pub fn invalid_exception(f: &mut fmt::Formatter<'_>, why: &str) -> fmt::Result {
    write!(f, "invalid exception: {why}")
}

/// A profile name the rule does not have.
pub fn unknown_profile(name: &str) -> String {
    format!("unknown profile {name:?}: expected default or elastic")
}
