//! The test guests, built by this crate's build script for WebAssembly and encoded as components, as
//! wasmtime's `test-programs-artifacts` does: the integration tests take it as a dev-dependency, so
//! `cargo build --release` of the product never builds a test guest.

/// The hostile rule component (`tests/hostile-guest`): the real rule, except on marker events.
pub const HOSTILE_COMPONENT: &str = env!("NEWTERMS_HOSTILE_COMPONENT");
