//! Building WebAssembly modules of this workspace from a build script, shared by `host/build.rs`
//! (the faces the product embeds) and `tests/artifacts/build.rs` (the test guests), each of which
//! includes this file with `#[path]`.
//!
//! Each module is built by a nested cargo with its own target directory, so that it never waits on
//! the outer build's lock, and with the environment of the outer build removed (flags, wrappers such as
//! clippy-driver), so that `cargo test`, `cargo clippy` and `cargo build --release` share one build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One WebAssembly build of a crate of this workspace.
pub struct Face {
    /// Cargo package.
    pub package: &'static str,
    /// Target triple.
    pub target: &'static str,
    /// Flags for the nested build's rustc.
    pub rustflags: &'static [&'static str],
    /// Cargo profile and its opt-level.
    pub profile: &'static str,
    pub opt_level: &'static str,
    /// A library made a cdylib with `cargo rustc` (its manifest makes an rlib), or a cdylib crate.
    pub as_cdylib: bool,
    /// File name in `OUT_DIR`.
    pub output: &'static str,
    /// Encoded as a component (a wit-bindgen core module), or left a core module.
    pub component: bool,
    /// Environment variable that gets the output's path at compile time, if any.
    pub path_env: Option<&'static str>,
}

/// Builds `faces` into `target_dir` and writes each, with the `newterms:rule` section, to `out_dir`;
/// returns the WIT package (`newterms:rule@0.4.0`).
pub fn build_faces(
    workspace: &Path,
    target_dir: &Path,
    out_dir: &Path,
    faces: &[Face],
) -> Result<String, String> {
    let wit_package = wit_package(&workspace.join("wit/rule.wit"))?;
    let provenance = provenance_section(&wit_package);

    for face in faces {
        ensure_wasm_target(face.target)?;
        cargo_build(workspace, target_dir, face)?;
        let built = target_dir
            .join(face.target)
            .join(face.profile)
            .join(format!("{}.wasm", face.package.replace('-', "_")));
        let out = out_dir.join(face.output);
        let module = std::fs::read(&built)
            .map_err(|error| format!("cannot read {}: {error}", built.display()))?;
        let mut bytes = if face.component {
            encode(&module, &built)?
        } else {
            module
        };
        // A custom section may stand anywhere between a module's or a component's sections.
        bytes.extend_from_slice(&provenance);
        std::fs::write(&out, bytes)
            .map_err(|error| format!("cannot write {}: {error}", out.display()))?;
        if let Some(name) = face.path_env {
            println!("cargo:rustc-env={name}={}", out.display());
        }
    }
    Ok(wit_package)
}

/// Where nested builds put their WebAssembly: `guest-wasm` in the outer build's target directory.
pub fn nested_target_dir(workspace: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                workspace.join(dir)
            }
        })
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest-wasm")
}

/// Asks cargo to build again when one of `paths` (relative to the workspace) changes.
pub fn watch(workspace: &Path, paths: &[&str]) {
    for path in paths {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
}

/// Builds one face with a nested cargo.
fn cargo_build(workspace: &Path, target_dir: &Path, face: &Face) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(workspace);
    if face.as_cdylib {
        build.args(["rustc", "--lib", "--crate-type", "cdylib"]);
    } else {
        build.arg("build");
    }
    build
        .args(["--package", face.package, "--profile", face.profile])
        .args(["--target", face.target])
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
    build.env("CARGO_ENCODED_RUSTFLAGS", face.rustflags.join("\x1f"));
    build.env("CARGO_PROFILE_GUEST_OPT_LEVEL", face.opt_level);
    // Cargo reads a build script's stdout as directives: the nested build's output goes to stderr.
    let status = build
        .stdout(std::io::stderr())
        .status()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build` of {} for {} failed ({status})",
            face.package, face.target
        ))
    }
}

/// The `package` line of the WIT file: `newterms:rule@0.4.0`.
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

/// Encodes a core module built by wit-bindgen as a component.
fn encode(core: &[u8], core_path: &Path) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|error| {
            format!(
                "cannot encode {} as a component: {error:#}",
                core_path.display()
            )
        })
}

/// Installs the WebAssembly target through rustup when it is missing, or says how to.
fn ensure_wasm_target(target: &str) -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    if libdir.as_deref().is_some_and(has_std) {
        return Ok(());
    }
    let how = format!("rustup target add {target}");
    println!("cargo:warning=the {target} target is missing: running `{how}`");
    let installed = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .is_ok_and(|status| status.success());
    if installed && libdir.as_deref().is_some_and(has_std) {
        Ok(())
    } else {
        Err(format!(
            "the guest is built for {target}, which this toolchain does not have; run:\n    {how}"
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

pub fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}
