//! The Extism ABI: the kernel functions the plugin imports from `extism:host/env` and the exported
//! functions a host calls. An export takes its input and sets its output through the kernel, which
//! keeps both in its own memory (not this module's), and returns 0, or 1 after setting an error.
//!
//! Only the eight kernel functions used are imported (the PDK crate would add its own layer for
//! the same few calls).

use std::cell::RefCell;

use crate::Plugin;
use crate::plugin::HASH_KEY;

#[link(wasm_import_module = "extism:host/env")]
unsafe extern "C" {
    // Safe to call: they read and write the kernel's memory by offsets it checks (a bad offset is
    // the kernel's error, never a write into this module's memory).
    safe fn input_length() -> u64;
    safe fn input_load_u8(offset: u64) -> u8;
    safe fn input_load_u64(offset: u64) -> u64;
    #[link_name = "alloc"]
    safe fn kernel_alloc(length: u64) -> u64;
    safe fn store_u8(offset: u64, value: u8);
    safe fn store_u64(offset: u64, value: u64);
    safe fn output_set(offset: u64, length: u64);
    safe fn error_set(offset: u64);
    safe fn config_get(key_offset: u64) -> u64;
    safe fn length(offset: u64) -> u64;
    safe fn load_u8(offset: u64) -> u8;
    safe fn load_u64(offset: u64) -> u64;
    #[link_name = "free"]
    safe fn kernel_free(offset: u64);
}

thread_local! {
    // Extism calls a plugin from one thread, one call at a time: one detector per instance.
    static PLUGIN: RefCell<Plugin> = RefCell::new(Plugin::default());
}

/// The call's input, copied out of the kernel a word at a time.
fn input() -> Vec<u8> {
    copy_out(
        input_length(),
        |at| input_load_u64(at),
        |at| input_load_u8(at),
    )
}

/// `length` bytes read with `word` (8 at a time) and `byte` (the rest) from offsets 0 up.
fn copy_out(length: u64, word: impl Fn(u64) -> u64, byte: impl Fn(u64) -> u8) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    let mut offset = 0;
    while length - offset >= 8 {
        bytes.extend_from_slice(&word(offset).to_le_bytes());
        offset += 8;
    }
    while offset < length {
        bytes.push(byte(offset));
        offset += 1;
    }
    bytes
}

/// The value of a key of the manifest's `config` (set by the host application), if set.
fn extism_config(key: &str) -> Option<Vec<u8>> {
    let key = to_kernel(key.as_bytes());
    let value = config_get(key);
    kernel_free(key);
    if value == 0 {
        return None;
    }
    let bytes = copy_out(
        length(value),
        |at| load_u64(value + at),
        |at| load_u8(value + at),
    );
    kernel_free(value);
    Some(bytes)
}

/// A copy of `bytes` in kernel memory; its offset.
fn to_kernel(bytes: &[u8]) -> u64 {
    let offset = kernel_alloc(bytes.len() as u64);
    let mut at = offset;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut array = [0; 8];
        array.copy_from_slice(word);
        store_u64(at, u64::from_le_bytes(array));
        at += 8;
    }
    for &byte in words.remainder() {
        store_u8(at, byte);
        at += 1;
    }
    offset
}

fn output(bytes: &[u8]) -> i32 {
    if !bytes.is_empty() {
        output_set(to_kernel(bytes), bytes.len() as u64);
    }
    0
}

fn result(outcome: Result<(), String>) -> i32 {
    match outcome {
        Ok(()) => 0,
        Err(message) => {
            error_set(to_kernel(message.as_bytes()));
            1
        }
    }
}

/// Replaces the configuration (JSON; empty input for the defaults) and clears history and counters.
/// The hash key comes from the manifest's `config` (`hash_key`), where the host application puts
/// random bits: the plugin has no source of its own.
#[unsafe(no_mangle)]
pub extern "C" fn configure() -> i32 {
    let json = input();
    let json: &[u8] = if json.trim_ascii().is_empty() {
        b"{}"
    } else {
        &json
    };
    let hash_key = extism_config(HASH_KEY);
    result(PLUGIN.with_borrow_mut(|plugin| plugin.configure(json, hash_key.as_deref())))
}

/// As `configure`, with Elastic rule files: JSON `{"config": {...}, "rules": [{"name", "text"}]}`.
#[unsafe(no_mangle)]
pub extern "C" fn configure_rules() -> i32 {
    let json = input();
    let hash_key = extism_config(HASH_KEY);
    result(PLUGIN.with_borrow_mut(|plugin| plugin.configure_rules(&json, hash_key.as_deref())))
}

/// NDJSON events in; the alerts they raise out, one a line.
#[unsafe(no_mangle)]
pub extern "C" fn process_ndjson() -> i32 {
    let events = input();
    output(&PLUGIN.with_borrow_mut(|plugin| plugin.process_ndjson(&events)))
}

/// The refused lines of the last `process_ndjson`, as JSON lines.
#[unsafe(no_mangle)]
pub extern "C" fn errors() -> i32 {
    PLUGIN.with_borrow(|plugin| output(plugin.errors()))
}

/// Counters, as JSON.
#[unsafe(no_mangle)]
pub extern "C" fn stats() -> i32 {
    output(&PLUGIN.with_borrow(Plugin::stats))
}

/// The first-seen history as snapshot bytes.
#[unsafe(no_mangle)]
pub extern "C" fn snapshot() -> i32 {
    output(&PLUGIN.with_borrow(Plugin::snapshot))
}

/// Replaces the history with the snapshot given as input; out, under rule files, what it did not
/// keep, one a line.
#[unsafe(no_mangle)]
pub extern "C" fn restore() -> i32 {
    let snapshot = input();
    match PLUGIN.with_borrow_mut(|plugin| plugin.restore(&snapshot)) {
        Ok(notices) => output(&notices),
        Err(message) => result(Err(message)),
    }
}

/// The rule's identity and configuration in force, as JSON.
#[unsafe(no_mangle)]
pub extern "C" fn metadata() -> i32 {
    output(&PLUGIN.with_borrow(Plugin::metadata))
}
