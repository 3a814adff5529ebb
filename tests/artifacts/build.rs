//! Builds the test guests for WebAssembly with a nested cargo, as `host/build.rs` builds the faces
//! (the same code: `host/build/wasm.rs`), encodes each as a component with the `newterms:rule`
//! section, and exports their paths to `src/lib.rs`.

use std::path::PathBuf;

#[path = "../../host/build/wasm.rs"]
mod wasm;

use wasm::{Face, build_faces, env_var, nested_target_dir, watch};

/// The test guests.
const GUESTS: &[Face] = &[
    // A deliberately faulty rule that the tests run the host against (a cdylib crate; no LTO, see the
    // `hostile` profile). The same code generation as the component (SIMD, opt-level 2), so that it
    // runs the real rule as the product does.
    Face {
        package: "newterms-hostile-guest",
        target: "wasm32-unknown-unknown",
        rustflags: &["-Ctarget-feature=+simd128"],
        profile: "hostile",
        opt_level: "2",
        as_cdylib: false,
        output: "newterms_hostile.wasm",
        component: true,
        path_env: Some("NEWTERMS_HOSTILE_COMPONENT"),
    },
];

fn main() {
    if let Err(message) = run() {
        // A build script reports failure by panicking; the message is what the user sees.
        panic!("\n\nbuilding the newterms test guests failed:\n{message}\n");
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("the artifacts crate is not two levels under the workspace")?;
    watch(
        workspace,
        &[
            "guest/src",
            "guest/Cargo.toml",
            "faces/component",
            "snapshot/src",
            "tests/hostile-guest",
            "wit",
            "host/build/wasm.rs",
            "Cargo.toml",
            "Cargo.lock",
        ],
    );
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    build_faces(workspace, &nested_target_dir(workspace), &out_dir, GUESTS)?;
    Ok(())
}
