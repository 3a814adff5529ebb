//! Builds the guest crate for `wasm32-unknown-unknown`, encodes it as a component with
//! `wit-component`, and leaves it in `OUT_DIR` for the host to embed.
//!
//! The core module is built by a nested cargo with its own target directory, so that it never waits on
//! the outer build's lock, and with the environment of the outer build removed (flags, wrappers such as
//! clippy-driver), so that `cargo test`, `cargo clippy` and `cargo build --release` share one guest
//! build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    if let Err(message) = run() {
        // A build script reports failure by panicking; the message is what the user sees.
        panic!("\n\nbuilding the newterms guest component failed:\n{message}\n");
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("the host crate has no parent directory")?;
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "snapshot/src",
        "snapshot/Cargo.toml",
        "tests/hostile-guest",
        "wit",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    ensure_wasm_target()?;

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                workspace.join(dir)
            }
        })
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest-wasm");
    // The rule, and a deliberately faulty rule that the tests run the host against.
    cargo_build(workspace, &target_dir, "newterms-guest", "guest", true)?;
    cargo_build(
        workspace,
        &target_dir,
        "newterms-hostile-guest",
        "hostile",
        false,
    )?;

    let wit_package = wit_package(&workspace.join("wit/rule.wit"))?;
    println!("cargo:rustc-env=NEWTERMS_WIT_PACKAGE={wit_package}");
    let provenance = provenance_section(&wit_package);

    let built = target_dir.join(WASM_TARGET);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    encode(
        &built.join("guest/newterms_guest.wasm"),
        &out_dir.join("newterms_rule.wasm"),
        &provenance,
    )?;
    let hostile = out_dir.join("newterms_hostile.wasm");
    encode(
        &built.join("hostile/newterms_hostile_guest.wasm"),
        &hostile,
        &provenance,
    )?;
    println!(
        "cargo:rustc-env=NEWTERMS_HOSTILE_COMPONENT={}",
        hostile.display()
    );
    Ok(())
}

/// Builds one WebAssembly package with a nested cargo; `as_cdylib` for a library whose manifest does
/// not make one.
fn cargo_build(
    workspace: &Path,
    target_dir: &Path,
    package: &str,
    profile: &str,
    as_cdylib: bool,
) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(workspace);
    if as_cdylib {
        build.args(["rustc", "--lib", "--crate-type", "cdylib"]);
    } else {
        build.arg("build");
    }
    build
        .args(["--package", package, "--profile", profile])
        .args(["--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    // Keep only what a nested cargo should see: not the outer build's flags, target or wrappers.
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        let outer_build_setting =
            (name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_MAKEFLAGS")
                || matches!(
                    name.as_ref(),
                    "RUSTFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTDOCFLAGS"
                );
        if outer_build_setting {
            build.env_remove(name.as_ref());
        }
    }
    // WebAssembly SIMD: the prefilter's one pass and memchr's searches run 16 bytes at a time. Every
    // wasmtime configuration this host uses enables SIMD, as do the other component hosts of note.
    build.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128");
    // Optimised for size, which keeps the component under 200 KB (opt-level 3 makes it ~240 KB); the
    // hot loops are written so that a size-optimised build still keeps them tight (see
    // benches/README.md).
    build.env("CARGO_PROFILE_GUEST_OPT_LEVEL", "s");
    // Cargo reads a build script's stdout as directives: the nested build's output goes to stderr.
    let status = build
        .stdout(std::io::stderr())
        .status()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo build` of {package} failed ({status})"))
    }
}

/// The `package` line of the WIT file: `newterms:rule@0.2.0`.
fn wit_package(wit: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(wit)
        .map_err(|error| format!("cannot read {}: {error}", wit.display()))?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("package "))
        .map(|rest| rest.trim_end_matches(';').trim().to_owned())
        .ok_or_else(|| format!("{} has no package line", wit.display()))
}

/// The `newterms:rule` custom section: what the component implements and which rule it is, for hosts
/// to check before they run it (see `host/src/provenance.rs`).
fn provenance_section(wit_package: &str) -> Vec<u8> {
    let rule = &newterms_guest::LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL;
    let data = format!(
        r#"{{"wit":"{wit_package}","rule_id":"{}","rule_name":"{}","rule_version":{},"snapshot_format":{}}}"#,
        rule.rule_id,
        rule.name,
        rule.version,
        newterms_snapshot::FORMAT_VERSION
    );
    let name = b"newterms:rule";
    let mut content = leb128(name.len());
    content.extend_from_slice(name);
    content.extend_from_slice(data.as_bytes());
    let mut section = vec![0];
    section.extend(leb128(content.len()));
    section.extend(content);
    section
}

fn leb128(mut value: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(low);
            return bytes;
        }
        bytes.push(low | 0x80);
    }
}

/// Encodes a core module built by wit-bindgen as a component, with `section` appended (a custom
/// section may stand anywhere between a component's sections).
fn encode(core_path: &Path, out: &Path, section: &[u8]) -> Result<(), String> {
    let core = std::fs::read(core_path)
        .map_err(|error| format!("cannot read {}: {error}", core_path.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|error| {
            format!(
                "cannot encode {} as a component: {error:#}",
                core_path.display()
            )
        })?;
    let mut component = component;
    component.extend_from_slice(section);
    std::fs::write(out, component)
        .map_err(|error| format!("cannot write {}: {error}", out.display()))
}

/// Installs the WebAssembly target through rustup when it is missing, or says how to.
fn ensure_wasm_target() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    if libdir.as_deref().is_some_and(has_std) {
        return Ok(());
    }
    let how = format!("rustup target add {WASM_TARGET}");
    println!("cargo:warning=the {WASM_TARGET} target is missing: running `{how}`");
    let installed = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .is_ok_and(|status| status.success());
    if installed && libdir.as_deref().is_some_and(has_std) {
        Ok(())
    } else {
        Err(format!(
            "the guest is built for {WASM_TARGET}, which this toolchain does not have; run:\n    {how}"
        ))
    }
}

fn has_std(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("libstd-"))
    })
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}
