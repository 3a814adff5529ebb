//! The newterms rule as an [Extism](https://extism.org) plugin.
//!
//! A core WebAssembly module for `wasm32-unknown-unknown` that any Extism host (Rust, Python, Go,
//! Node, Java, .NET) loads as a plugin. It is glue only: every rule behaviour comes from the rule
//! crate (`newterms-guest`), so its alerts and snapshots are those of the component.
//!
//! Exports (each an Extism function: input bytes in, output bytes out, an Extism error on failure):
//!
//! | export | input | output |
//! |---|---|---|
//! | `configure` | the configuration as JSON, the keys of `newterms scan --config` | nothing; clears history and counters |
//! | `configure_rules` | `{"config": {...}, "rules": [{"name": ..., "text": ...}]}`: Elastic rule files' texts, run in place of the built-in rule | nothing; clears history and counters; a refused file is the error, naming it |
//! | `process_ndjson` | events, one JSON document a line | the alerts raised, one a line, each the document `newterms scan` prints |
//! | `errors` | nothing | the lines of the last `process_ndjson` that were refused, as JSON lines `{"line": N, "error": "..."}` (`line` from 1) |
//! | `stats` | nothing | counters as JSON |
//! | `snapshot` | nothing | the first-seen history, in the component's snapshot format |
//! | `restore` | a snapshot | under rule files, what it did not keep (a rule removed or changed), one a line; the history is the snapshot's (unchanged on error) |
//! | `metadata` | nothing | the rule's identity and the configuration in force, as JSON |
//!
//! A refused line raises no alert and does not stop the batch: it is counted in `stats` (`errors`)
//! and listed by `errors`, so the alerts output stays exactly the alerts.
//!
//! The manifest's `config` may set `hash_key` (32 hex digits): the key for hashing terms, which the
//! host application should draw at random (the plugin has no randomness). `configure` reads it.
//!
//! The module is built without `+simd128`: Chicory, the pure-JVM runtime of Extism's Java SDK,
//! refuses SIMD instructions unless its optional SIMD support is turned on (Java 21 and later), and
//! one file should load in every Extism host. The rule crate's scalar path runs instead: under
//! extism-sys (wasmtime) it took about 1.4 times the CPU of a `+simd128` build on a generated stream.
//! Built at opt-level 3: at opt-level `s` (a third smaller, when the module was 315 KB) the scalar
//! path took 2.7 times the CPU.

mod config;
pub mod plugin;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the Extism ABI: imported kernel functions and `no_mangle` exports
mod abi;

pub use plugin::Plugin;
