//! The rule's errors, said in the one wording the faces and the host share
//! ([`newterms_contract::wording`]). A snapshot's refusal has its wording beside it, in
//! `newterms-snapshot`.

use std::fmt;

use newterms_contract::wording;

use crate::detector::{ConfigError, EventError, LineError};

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::MalformedJson(why) => wording::malformed_json(f, why),
            EventError::NotAnObject => wording::not_an_object(f),
            EventError::MissingTime => wording::missing_time(f),
            EventError::InvalidTime(value) => wording::invalid_time(f, value),
            EventError::TooManyTerms(count) => wording::too_many_terms(f, *count),
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotUtf8(offset) => wording::not_utf8(f, *offset),
            LineError::Event(error) => error.fmt(f),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroCapacity => wording::zero_capacity(f),
            ConfigError::InvalidWindow(window) => wording::invalid_window(f, *window),
            ConfigError::InvalidException(why) => wording::invalid_exception(f, why),
        }
    }
}
