//! What the rule's errors say to people: one wording for every face that reports them as text
//! (the Extism plugin's errors, and the host's error types, which display through these). A
//! snapshot's refusal has its wording beside it, in `newterms-snapshot`.

use std::fmt;

use crate::detector::{EventError, LineError};

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

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotUtf8(offset) => write!(f, "not UTF-8 (invalid byte at {offset})"),
            LineError::Event(error) => error.fmt(f),
        }
    }
}
