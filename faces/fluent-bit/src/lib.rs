//! The newterms rule as a Fluent Bit `filter_wasm` module (Fluent Bit 4.1 and later): glue around the
//! rule crate (`newterms-guest`), which decides everything.
//!
//! The module exports `newterms_filter(tag_ptr, tag_len, sec, nsec, record_ptr, record_len) -> i32`
//! (Fluent Bit's filter signature; use `Event_Format json`), and wasi-libc's `malloc` and `free`, so
//! that Fluent Bit copies records with the module's allocator rather than its 8 KiB default heap.
//! [`filter`] holds the logic and unit-tests natively; the exports exist only on WebAssembly.

pub mod filter;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // raw pointers from Fluent Bit and WASI imports
mod exports;
