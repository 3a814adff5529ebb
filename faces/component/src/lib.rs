//! The newterms rule as a WebAssembly component: the `newterms:rule/detector` exports of `wit/rule.wit`
//! around the rule crate (`newterms-guest`). Glue only; on a native target this crate is empty.
//!
//! `host/build.rs` builds it for `wasm32-unknown-unknown` and encodes it as a component.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code, missing_docs)] // the canonical-ABI glue and items that wit-bindgen generates
pub mod bindings;
