//! Integration tests: the real component in wasmtime, and the `newterms` binary. One test binary,
//! because wasmtime links slowly.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The guest tests' deterministic generator: one for the whole project.
#[path = "../../guest/tests/common/mod.rs"]
mod common;
mod support;

mod bad_input;
mod cli;
mod component;
mod crash;
mod damaged;
mod delivery;
mod detection;
mod durable;
mod faults;
mod reader;
mod real_data;
mod rule_pack;
mod state;
mod threads;
mod vectors;
