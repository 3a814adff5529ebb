//! Builds every face of the rule (the crates in `faces/`, one per host ABI around the rule crate
//! `guest/`) for WebAssembly, encodes the component face as a component with `wit-component`, and
//! leaves each in `OUT_DIR` for the host to embed (`host/src/faces.rs`).
//!
//! Each module is built by a nested cargo with its own target directory, so that it never waits on
//! the outer build's lock, and with the environment of the outer build removed (flags, wrappers such as
//! clippy-driver), so that `cargo test`, `cargo clippy` and `cargo build --release` share one build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One WebAssembly build of a crate of this workspace.
struct Face {
    /// Cargo package.
    package: &'static str,
    /// Target triple.
    target: &'static str,
    /// Flags for the nested build's rustc.
    rustflags: &'static [&'static str],
    /// Cargo profile and its opt-level.
    profile: &'static str,
    opt_level: &'static str,
    /// A library made a cdylib with `cargo rustc` (its manifest makes an rlib), or a cdylib crate.
    as_cdylib: bool,
    /// File name in `OUT_DIR`.
    output: &'static str,
    /// Encoded as a component (a wit-bindgen core module), or left a core module.
    component: bool,
    /// Environment variable that gets the output's path at compile time, if any.
    path_env: Option<&'static str>,
}

/// Every module the host embeds or the tests load.
const FACES: &[Face] = &[
    // The component: the contract (`wit/rule.wit`), imports nothing. WebAssembly SIMD: the
    // prefilter's one pass and memchr's searches run 16 bytes at a time; every wasmtime configuration
    // this host uses enables SIMD, as do the other component hosts of note. Optimised for size, which
    // keeps the component under 200 KB (opt-level 3 makes it ~240 KB); the hot loops are written so
    // that a size-optimised build still keeps them tight (see benches/README.md).
    Face {
        package: "newterms-component",
        target: "wasm32-unknown-unknown",
        rustflags: &["-Ctarget-feature=+simd128"],
        profile: "guest",
        opt_level: "s",
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
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "faces",
        "snapshot/src",
        "snapshot/Cargo.toml",
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

    let wit_package = wit_package(&workspace.join("wit/rule.wit"))?;
    println!("cargo:rustc-env=NEWTERMS_WIT_PACKAGE={wit_package}");
    let provenance = provenance_section(&wit_package);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);

    for face in FACES {
        ensure_wasm_target(face.target)?;
        cargo_build(workspace, &target_dir, face)?;
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
    Ok(())
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

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}
