//! The exports Fluent Bit calls, and the one WASI lookup std does not offer (the first preopened
//! directory, where the filter keeps its files).

use std::cell::Cell;
use std::path::PathBuf;

use crate::filter::Filter;

thread_local! {
    // Fluent Bit (4.1 and later) keeps one instance per filter and calls it from one thread. The
    // filter is taken out for a call and put back after it: a call that traps (WAMR's small stack,
    // say) never puts it back, and the next record starts a new filter from the files, as a restart
    // of Fluent Bit would, instead of finding it half-updated.
    static FILTER: Cell<Option<Box<Filter>>> = const { Cell::new(None) };
}

/// Fluent Bit's filter function: `record` is the event as JSON text (`Event_Format json`); the
/// answer is a NUL-terminated string in one buffer the module reuses: an alert document, or `""` to
/// drop the record.
#[unsafe(no_mangle)]
pub extern "C" fn newterms_filter(
    _tag: *const u8,
    _tag_len: u32,
    _sec: u32,
    _nsec: u32,
    record: *const u8,
    record_len: u32,
) -> *const u8 {
    let record: &[u8] = if record.is_null() {
        &[]
    } else {
        // SAFETY: Fluent Bit copied `record_len` bytes to `record` in this module's memory and
        // keeps them until the call returns.
        unsafe { std::slice::from_raw_parts(record, record_len as usize) }
    };
    let mut filter = FILTER
        .take()
        .unwrap_or_else(|| Box::new(Filter::new(first_preopen())));
    // The answer lives in the filter's own buffer, which stays where it is when the box moves.
    let answer = filter.filter(record).as_ptr();
    FILTER.set(Some(filter));
    answer
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn fd_prestat_get(fd: u32, prestat: *mut u32) -> u16;
    fn fd_prestat_dir_name(fd: u32, path: *mut u8, path_len: u32) -> u16;
}

/// The first directory of `Accessible_Paths` (WASI hands preopens out from descriptor 3 on, in the
/// order given), as its path; `.` when there is none.
fn first_preopen() -> PathBuf {
    const FIRST_PREOPEN: u32 = 3;
    // `prestat`: a tag (0 for a directory) then the name's length, each 4 bytes.
    let mut prestat = [0u32; 2];
    // SAFETY: the buffer has the size and alignment of a WASI `prestat`.
    let found = unsafe { fd_prestat_get(FIRST_PREOPEN, prestat.as_mut_ptr()) } == 0;
    if !found || prestat[0] & 0xff != 0 {
        return PathBuf::from(".");
    }
    let mut name = vec![0u8; prestat[1] as usize];
    // SAFETY: `name` has exactly the length WASI gave for this descriptor's name.
    let named =
        unsafe { fd_prestat_dir_name(FIRST_PREOPEN, name.as_mut_ptr(), name.len() as u32) } == 0;
    // Some runtimes count a trailing NUL in the length.
    while name.last() == Some(&0) {
        name.pop();
    }
    match String::from_utf8(name) {
        Ok(name) if named && !name.is_empty() => PathBuf::from(name),
        _ => PathBuf::from("."),
    }
}
