//! What processing reports: refusals, per-line outcomes, counters and memory. The types are the
//! contract's (`newterms-contract`), which the host speaks too.

pub use newterms_contract::outcome::{
    EventError, ExtractedLine, Extraction, Footprint, FreshTerms, LineError, LineOutcome,
    LineTerms, Observation, Route, Stats, Terms,
};
