//! Runs the newterms detection rule, a WebAssembly component, in a wasmtime sandbox.
//!
//! ```no_run
//! use newterms::{RuleComponent, RuleConfig, Sandbox, Limits};
//!
//! # fn main() -> Result<(), newterms::Error> {
//! let sandbox = Sandbox::new(Limits::default()).expect("engine");
//! let component = RuleComponent::embedded(&sandbox)?;
//! let mut rule = component.instantiate(&RuleConfig::default())?;
//! let alerts = rule.process_event(r#"{"eventSource": "lambda.amazonaws.com"}"#)?;
//! # Ok(()) }
//! ```
//!
//! The component keeps its first-seen history; [`RuleInstance::snapshot`] and
//! [`RuleInstance::restore`] move it in and out, and a [`StateStore`] keeps it between runs.

mod bindings;
mod cache;
pub mod checkpoint;
mod component;
pub mod durable;
mod error;
pub mod faces;
mod handoff;
pub mod input;
mod instance;
pub mod ocsf;
pub mod provenance;
mod sandbox;
pub mod scan;
pub mod settings;
pub mod snapshots;
pub mod state;
mod types;

pub use component::{EMBEDDED_COMPONENT, RuleComponent};
pub use durable::StateLock;
pub use error::{Error, Fault};
pub use instance::{EventOutcome, HostState, RuleInstance};
pub use sandbox::{Limits, Sandbox};
pub use state::{FileStateStore, MemoryStateStore, StateStore};
pub use types::{
    AttackReference, ConfigError, EventError, Exception, Footprint, LineError, LineOutcome,
    Metadata, Partition, Profile, RestoreError, Route, RuleConfig, RuleFile, RuleSummary, Stats,
    bucket_of,
};
