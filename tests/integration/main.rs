//! Integration tests: the real component in wasmtime, and the `newterms` binary. One test binary,
//! because wasmtime links slowly.

mod support;

mod bad_input;
mod cli;
mod component;
mod detection;
mod real_data;
mod state;
