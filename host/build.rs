//! Builds every face of the rule (the crates in `faces/`, one per host ABI around the rule crate
//! `guest/`) for WebAssembly, encodes the component face as a component with `wit-component`, and
//! leaves each in `OUT_DIR` for the host to embed (`host/src/faces.rs`). How: `build/wasm.rs`.

use std::path::PathBuf;

#[path = "build/wasm.rs"]
mod wasm;

use wasm::{Face, build_faces, env_var, nested_target_dir, watch};

/// Every module the host embeds.
const FACES: &[Face] = &[
    // The component: the contract (`wit/rule.wit`), imports nothing. WebAssembly SIMD: the
    // prefilter's one pass and memchr's searches run 16 bytes at a time; every wasmtime configuration
    // this host uses enables SIMD, as do the other component hosts of note. opt-level 2 (~780 KB
    // against ~580 KB at `s`): a rule pack runs in 0.90-0.95x the time, the built-in rule in about
    // the same; 3 is no faster than 2 (see benches/README.md, stop 26).
    Face {
        package: "newterms-component",
        target: "wasm32-unknown-unknown",
        rustflags: &["-Ctarget-feature=+simd128"],
        profile: "guest",
        opt_level: "2",
        as_cdylib: true,
        output: "newterms_rule.wasm",
        component: true,
        path_env: None,
    },
    // Fluent Bit's filter_wasm: a WASI preview 1 core module. No SIMD: Fluent Bit builds WAMR without
    // it and refuses such a module. WAMR interprets it, so speed over size. wasi-libc's `malloc` and
    // `free` (the allocator Rust's std uses there) are exported: Fluent Bit copies each record into
    // the module with them when they are (its own fallback heap is 8 KiB).
    Face {
        package: "newterms-fluent-bit",
        target: "wasm32-wasip1",
        rustflags: &["-Clink-arg=--export=malloc", "-Clink-arg=--export=free"],
        profile: "guest",
        opt_level: "3",
        as_cdylib: true,
        output: "newterms_fluent_bit.wasm",
        component: false,
        path_env: None,
    },
    // The Extism plugin: a core module without WASI. No SIMD: Chicory, the runtime of Extism's Java
    // SDK, refuses SIMD unless its optional support is on (Java 21+); opt-level 3, because the scalar
    // path at `s` takes 2.7x the CPU.
    Face {
        package: "newterms-extism",
        target: "wasm32-unknown-unknown",
        rustflags: &[],
        profile: "guest",
        opt_level: "3",
        as_cdylib: true,
        output: "newterms_extism.wasm",
        component: false,
        path_env: None,
    },
];

fn main() {
    if let Err(message) = run() {
        // A build script reports failure by panicking; the message is what the user sees.
        panic!("\n\nbuilding the newterms WebAssembly modules failed:\n{message}\n");
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("the host crate has no parent directory")?;
    watch(
        workspace,
        &[
            "guest/src",
            "guest/Cargo.toml",
            "faces",
            "snapshot/src",
            "snapshot/Cargo.toml",
            "wit",
            "host/build",
            "Cargo.toml",
            "Cargo.lock",
        ],
    );
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let wit_package = build_faces(workspace, &nested_target_dir(workspace), &out_dir, FACES)?;
    println!("cargo:rustc-env=NEWTERMS_WIT_PACKAGE={wit_package}");
    Ok(())
}
