//! The "AWS Lambda Function Invoked by an Unusual Principal" new-terms rule.
//!
//! Plain Rust that unit-tests natively, with no WebAssembly bindings: the faces in `faces/` export it
//! (`faces/component` as a component of the `newterms:rule` world in `wit/`, `faces/fluent-bit` as a
//! Fluent Bit filter module). Nothing here panics on input: a panic would trap and poison the
//! host's instance.

pub mod alert;
pub mod bytes;
pub mod cloudtrail;
pub mod definition;
pub mod detector;
pub mod engine;
pub mod fastpath;
pub mod fields;
pub mod history;
pub mod kql;
mod lanes;
pub mod lookup;
pub mod prefilter;
pub mod rule_pack;
#[cfg(feature = "settings")]
pub mod settings;
pub mod sparse;
#[cfg(test)]
mod testing;
pub mod wildcard;

pub use definition::{LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL, Profile, RuleDefinition};
pub use detector::{
    Config, ConfigError, Detector, EventError, Exception, Footprint, LineError, LineOutcome, Stats,
};
pub use engine::Engine;
pub use rule_pack::{Notice, RulePackDetector};
pub use snapshot::RestoreError;

/// The snapshot format, a crate of its own (see its documentation).
pub use newterms_snapshot as snapshot;
/// Event time, shared with the snapshot format.
pub use newterms_snapshot::time;
