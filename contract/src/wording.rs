//! What the rule's refusals say to people: one wording for the rule crate (whose errors the Extism
//! plugin reports as text) and for the host.

use std::fmt;

use crate::outcome::{ConfigError, EventError, LineError};

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::MalformedJson(why) => write!(f, "malformed JSON: {why}"),
            EventError::NotAnObject => f.write_str("not a JSON object"),
            EventError::MissingTime => {
                f.write_str("matching event without a time (@timestamp or eventTime)")
            }
            EventError::InvalidTime(value) => {
                write!(f, "matching event with an unreadable time {value:?}")
            }
            EventError::TooManyTerms(count) => write!(
                f,
                "{count} term combinations in one event is more than the rule takes"
            ),
        }
    }
}

impl std::error::Error for EventError {}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotUtf8(offset) => write!(f, "not UTF-8 (invalid byte at {offset})"),
            LineError::Event(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for LineError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroCapacity => f.write_str("the history capacity must be at least 1"),
            ConfigError::InvalidWindow(window) => write!(f, "a window of {window} ms is refused"),
            ConfigError::InvalidException(why) => write!(f, "invalid exception: {why}"),
            ConfigError::InvalidPartition { index, count } => {
                write!(f, "partition {index} of {count} does not exist")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// A profile name the rule does not have.
pub fn unknown_profile(name: &str) -> String {
    format!("unknown profile {name:?}: expected default or elastic")
}
