//! Delivery files (`{"Records": [...]}`) are streamed: a file much larger than the memory the scan
//! may use is read whole, record by record.

use std::io::{BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{direct_invoke, scratch};

/// The peak resident memory of a running process (`VmHWM`, in bytes), if it still runs.
fn peak_memory(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn a_delivery_file_larger_than_the_memory_bound_is_scanned_in_bounded_memory() {
    const FILE_BYTES: u64 = 160 << 20;
    const MEMORY_BOUND: u64 = 64 << 20;
    let directory = scratch("large-delivery");
    let path = directory.join("delivery.json");
    let mut file = BufWriter::new(std::fs::File::create(&path).expect("create"));
    // Pretty-printed as AWS's console tools write it, one record per line; all by one user, so
    // one alert.
    let record = direct_invoke("alice", "2024-02-01T00:00:00Z").to_string();
    file.write_all(b"{\n  \"Records\": [\n").expect("write");
    let mut written = 0_u64;
    let mut records = 0_u64;
    while written < FILE_BYTES {
        if records > 0 {
            file.write_all(b",\n").expect("write");
        }
        file.write_all(b"    ").expect("write");
        file.write_all(record.as_bytes()).expect("write");
        written += record.len() as u64 + 6;
        records += 1;
    }
    file.write_all(b"\n  ]\n}\n").expect("write");
    file.flush().expect("flush");
    drop(file);

    let mut child = Command::new(env!("CARGO_BIN_EXE_newterms"))
        .args(["scan", &path.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn newterms");
    // VmHWM only grows: the last reading before the exit is the peak of the scan but its last
    // few milliseconds (a whole-file read would hold the file for the whole scan).
    let mut peak = 0;
    while child.try_wait().expect("wait").is_none() {
        peak = peak_memory(child.id()).unwrap_or(0).max(peak);
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("output");
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{records} events read, {records} matched")),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1);
    assert!(peak > 0, "the scan was too quick to measure");
    assert!(
        peak < MEMORY_BOUND,
        "peak memory {} MiB for a {} MiB delivery file",
        peak >> 20,
        FILE_BYTES >> 20
    );
}
