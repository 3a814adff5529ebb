//! Builds the test guests for `wasm32-unknown-unknown` with a nested cargo (as `host/build.rs`
//! builds the rule: its own target directory, the outer build's environment removed), encodes each
//! as a component with the `newterms:rule` section, and exports their paths to `src/lib.rs`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

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
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
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
    // The rule's own build (host/build.rs) has installed the target if it was missing.
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
    cargo_build(workspace, &target_dir, "newterms-hostile-guest", "hostile")?;

    let section = provenance_section(&wit_package(&workspace.join("wit/rule.wit"))?);
    let hostile = PathBuf::from(env_var("OUT_DIR")?).join("newterms_hostile.wasm");
    encode(
        &target_dir
            .join(WASM_TARGET)
            .join("hostile/newterms_hostile_guest.wasm"),
        &hostile,
        &section,
    )?;
    println!(
        "cargo:rustc-env=NEWTERMS_HOSTILE_COMPONENT={}",
        hostile.display()
    );
    Ok(())
}

/// Builds one WebAssembly cdylib package with a nested cargo.
fn cargo_build(
    workspace: &Path,
    target_dir: &Path,
    package: &str,
    profile: &str,
) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "--package", package, "--profile", profile])
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
    // The same code generation as the rule's build (SIMD, size), so that the rule crate's build is
    // shared and the hostile guest runs the real rule as the product does.
    build.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128");
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

/// The `newterms:rule` custom section, as the rule's build writes it (hosts refuse a component
/// without it).
fn provenance_section(wit_package: &str) -> Vec<u8> {
    let rule = &newterms_guest::LAMBDA_INVOKED_BY_UNUSUAL_PRINCIPAL;
    let data = format!(
        r#"{{"wit":"{wit_package}","rule_id":"{}","rule_name":"{}","rule_version":{},"snapshot_format":{}}}"#,
        rule.rule_id,
        rule.name,
        rule.version,
        newterms_guest::snapshot::FORMAT_VERSION
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

/// Encodes a core module built by wit-bindgen as a component, with `section` appended.
fn encode(core_path: &Path, out: &Path, section: &[u8]) -> Result<(), String> {
    let core = std::fs::read(core_path)
        .map_err(|error| format!("cannot read {}: {error}", core_path.display()))?;
    let mut component = wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|error| {
            format!(
                "cannot encode {} as a component: {error:#}",
                core_path.display()
            )
        })?;
    component.extend_from_slice(section);
    std::fs::write(out, component)
        .map_err(|error| format!("cannot write {}: {error}", out.display()))
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}
