//! The "AWS Lambda Function Invoked by an Unusual Principal" new-terms rule.
//!
//! Plain Rust that unit-tests natively; [`bindings`] (WebAssembly only) exports it as a component of
//! the `newterms:rule` world in `wit/`. Nothing here panics on input: a panic would trap and poison the
//! host's instance.

pub mod alert;
pub mod cloudtrail;
pub mod definition;
pub mod detector;
pub mod fastpath;
pub mod fields;
pub mod history;
mod lanes;
pub mod prefilter;
pub mod wildcard;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
#[allow(unsafe_code)] // the canonical-ABI glue that wit-bindgen generates
mod bindings;

pub use definition::{LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL, Profile, RuleDefinition};
pub use detector::{
    Config, ConfigError, Detector, EventError, Exception, Footprint, LineError, LineOutcome, Stats,
};
pub use snapshot::RestoreError;

/// The snapshot format, a crate of its own (see its documentation).
pub use newterms_snapshot as snapshot;
/// Event time, shared with the snapshot format.
pub use newterms_snapshot::time;
