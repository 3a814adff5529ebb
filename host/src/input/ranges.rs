//! A plain file read in byte ranges, each range by whichever thread takes it, so that reading
//! scales with the threads extracting events instead of running on one reader thread.
//!
//! A range holds the lines that *start* inside it: it passes over the end of the line the range
//! before it holds, and reads its own last line to its end. Its items are numbered from its own
//! line 1 and item 0; [`Numbering`] places them after the ranges before it, in input order, so
//! that every item is where one reading of the whole file puts it. The common range (lines of
//! UTF-8 events, none blank, padded or a delivery document) is read straight into the batch that
//! the component is given, and checked in one pass; any other is read line by line by the input
//! reader itself, so that there is one reading of lines and the two cannot disagree.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{InputError, InputProblem, InputReader, Spot, is_delivery_document, utf8_error};

/// The fewest bytes a range spans, however small the batches.
const SMALLEST_RANGE: u64 = 4 << 10;

/// The most a range read straight into memory may hold (its last line included); a range with a
/// longer line is read line by line, which passes over a line too long to keep.
const DIRECT_LIMIT: usize = 8 << 20;

/// Bytes read at a time while looking for a line's end.
const STEP: usize = 64 << 10;

/// Bytes first read past a range's end for the rest of its last line: a line or two of most
/// streams, so that each range does not read (and zero) a whole [`STEP`] for it. Doubled up to
/// [`STEP`] while no line end is found.
const FIRST_STEP: usize = 4 << 10;

/// A regular file that is neither gzip nor a delivery document, opened once and read at offsets
/// by any thread.
#[derive(Debug)]
pub struct PlainFile {
    /// Index of the input in the reader's list.
    pub index: usize,
    /// Its name, for locations.
    pub name: Arc<str>,
    file: File,
    /// Its length when opened: the last range reads on to its end, however long it has grown.
    length: u64,
    /// The mean length of its first lines (with their `\n`), for the size of its ranges.
    line_bytes: u64,
}

impl PlainFile {
    /// The file `index` of the reader's inputs, whose first bytes are `head`.
    pub(super) fn new(index: usize, name: Arc<str>, file: File, length: u64, head: &[u8]) -> Self {
        let lines = memchr::memchr_iter(b'\n', head).count().max(1) as u64;
        Self {
            index,
            name,
            file,
            length,
            line_bytes: (head.len() as u64 / lines).max(1),
        }
    }

    /// How many bytes a range should span to hold about three quarters of a batch of `events`
    /// events, by the file's first lines, at most `most_bytes`: a range that holds more than a
    /// batch has its rest copied out and sent as a batch of its own, which costs more than
    /// somewhat smaller batches do (ranges of seven eighths of a batch of the mixed stream took
    /// 1.2x the wall time of three quarters).
    pub fn range_bytes(&self, events: usize, most_bytes: usize) -> u64 {
        let most = most_bytes.min(DIRECT_LIMIT) as u64;
        (self.line_bytes.saturating_mul(events as u64) / 4 * 3)
            .clamp(SMALLEST_RANGE, most.max(SMALLEST_RANGE))
    }

    /// The file cut into ranges of `bytes` (at least one range, the last open-ended).
    pub fn ranges(self: &Arc<Self>, bytes: u64) -> impl Iterator<Item = Range> + use<> {
        let bytes = bytes.max(1);
        let count = self.length.div_ceil(bytes).max(1);
        let file = Arc::clone(self);
        (0..count).map(move |index| Range {
            file: Arc::clone(&file),
            start: index * bytes,
            end: (index + 1 < count).then(|| (index + 1) * bytes),
        })
    }

    /// Reads at `offset` until `buffer` is full or the file ends; how many bytes were read.
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buffer.len() {
            match read_at(&self.file, &mut buffer[filled..], offset + filled as u64)? {
                0 => break,
                read => filled += read,
            }
        }
        Ok(filled)
    }
}

/// One read of `file` at `offset` into `buffer` (again when a signal interrupted it); how many
/// bytes were read.
pub(super) fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        #[cfg(unix)]
        let read = std::os::unix::fs::FileExt::read_at(file, buffer, offset);
        #[cfg(windows)]
        let read = std::os::windows::fs::FileExt::seek_read(file, buffer, offset);
        match read {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            read => return read,
        }
    }
}

/// The lines of a plain file that start in `start..end` (`start..` for the last range).
#[derive(Debug, Clone)]
pub struct Range {
    file: Arc<PlainFile>,
    start: u64,
    end: Option<u64>,
}

/// What a range held: its items, numbered within it, and its events' texts.
#[derive(Debug, Default)]
pub struct RangeRead {
    /// Each item, as [`InputReader::next_into`] gives it, line and item counted from the range's.
    pub items: Vec<Result<Spot, InputError>>,
    /// Where each event's text ends in the text read (at the `\n` that follows it).
    pub ends: Vec<usize>,
    /// Lines that start in the range, blank ones included.
    pub lines: u64,
    /// Whether reading failed: the rest of the file is lost, as a reading of the whole file would
    /// lose it.
    pub lost: bool,
}

impl Range {
    /// Index of its input.
    pub fn input(&self) -> usize {
        self.file.index
    }

    /// Reads the range's events into `text` (replacing what it held), each followed by `\n`, as
    /// [`InputReader::next_into`] would give them. A `text` that held a range before is read into
    /// without being cleared first (clearing is a tenth of the reading).
    pub fn read(&self, text: &mut Vec<u8>) -> RangeRead {
        let first = match self.first_line() {
            Ok(Some(first)) => first,
            Ok(None) => {
                text.clear();
                return RangeRead::default();
            }
            Err(error) => {
                text.clear();
                return self.failed(error);
            }
        };
        match self.read_direct(first, text) {
            Ok(Some(read)) => read,
            // Anything uncommon, and a failure (said at its line), read line by line.
            Ok(None) | Err(_) => {
                text.clear();
                self.read_lines(first, text)
            }
        }
    }

    /// Where the first line that starts in the range starts, if one does.
    fn first_line(&self) -> io::Result<Option<u64>> {
        let Some(mut at) = self.start.checked_sub(1) else {
            return Ok(Some(0));
        };
        // The byte before the range tells whether a line starts at its first byte.
        let mut buffer = vec![0; FIRST_STEP];
        loop {
            let read = self.file.read_at(&mut buffer, at)?;
            if read == 0 {
                return Ok(None);
            }
            if let Some(newline) = memchr::memchr(b'\n', &buffer[..read]) {
                let first = at + newline as u64 + 1;
                return Ok(self.end.is_none_or(|end| first < end).then_some(first));
            }
            at += read as u64;
            if self.end.is_some_and(|end| at >= end) {
                return Ok(None);
            }
            buffer.resize(STEP, 0);
        }
    }

    /// The common range read straight into `text` and checked in one pass; `None` when it is not
    /// one (a line blank, padded, not UTF-8, a delivery document, or too long to hold).
    fn read_direct(&self, first: u64, text: &mut Vec<u8>) -> io::Result<Option<RangeRead>> {
        let nominal = match self.end {
            Some(end) => (end - first) as usize,
            None => self.file.length.saturating_sub(first) as usize,
        };
        if nominal > DIRECT_LIMIT {
            return Ok(None);
        }
        text.resize(nominal, 0);
        let read = self.file.read_at(text, first)?;
        text.truncate(read);
        // On to the end of the last line (for the last range, of the file).
        let mut done = read < nominal || (self.end.is_some() && text.last() == Some(&b'\n'));
        let mut step = FIRST_STEP;
        while !done {
            let from = text.len();
            if from > DIRECT_LIMIT {
                return Ok(None);
            }
            text.resize(from + step, 0);
            step = (step * 2).min(STEP);
            let read = self.file.read_at(&mut text[from..], first + from as u64)?;
            text.truncate(from + read);
            done = read == 0;
            if self.end.is_some()
                && let Some(newline) = memchr::memchr(b'\n', &text[from..])
            {
                text.truncate(from + newline + 1);
                done = true;
            }
        }
        if text.len() > DIRECT_LIMIT {
            return Ok(None);
        }
        if text.last().is_some_and(|&last| last != b'\n') {
            text.push(b'\n');
        }
        if utf8_error(text).is_some() {
            return Ok(None);
        }
        let mut read = RangeRead::default();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', text) {
            let line = &text[start..end];
            let (Some(head), Some(tail)) = (line.first(), line.last()) else {
                return Ok(None);
            };
            if head.is_ascii_whitespace()
                || tail.is_ascii_whitespace()
                || is_delivery_document(line)
            {
                return Ok(None);
            }
            read.items.push(Ok(Spot {
                line: read.lines + 1,
                record: None,
                input: self.file.index,
                item: read.lines,
            }));
            read.ends.push(end);
            read.lines += 1;
            start = end + 1;
        }
        Ok(Some(read))
    }

    /// The range read line by line by the input reader, from its first line to its end.
    fn read_lines(&self, first: u64, text: &mut Vec<u8>) -> RangeRead {
        let counted = Arc::new(Counted::default());
        let lines = LinesOfRange {
            file: Arc::clone(&self.file),
            at: first,
            end: self.end,
            done: false,
            counted: Arc::clone(&counted),
        };
        let mut reader = InputReader::over_part(
            Arc::clone(&self.file.name),
            self.file.index,
            BufReader::with_capacity(STEP, Box::new(lines)),
        );
        let mut read = RangeRead::default();
        while let Some(item) = reader.next_into(text) {
            match &item {
                Ok(_) => {
                    read.ends.push(text.len());
                    text.push(b'\n');
                }
                Err(error) => read.lost |= error.unreadable,
            }
            read.items.push(item);
        }
        read.lines = counted.lines();
        read
    }

    /// A range that could not be read at all: its one item says so at its first line.
    fn failed(&self, error: io::Error) -> RangeRead {
        RangeRead {
            items: vec![Err(InputError {
                location: Spot {
                    line: 1,
                    record: None,
                    input: self.file.index,
                    item: 0,
                }
                .located(Arc::clone(&self.file.name)),
                problem: InputProblem::Read(error.to_string()),
                unreadable: true,
            })],
            ends: Vec::new(),
            lines: 1,
            lost: true,
        }
    }
}

/// The bytes of a range's lines, from its first line's start to its last line's end, counting
/// its lines as they pass.
struct LinesOfRange {
    file: Arc<PlainFile>,
    at: u64,
    end: Option<u64>,
    done: bool,
    counted: Arc<Counted>,
}

/// Lines passed by a [`LinesOfRange`], read once the input reader that owns it is done.
#[derive(Default)]
struct Counted {
    newlines: AtomicU64,
    /// Whether the last byte passed left a line open (no `\n` after it).
    open: AtomicBool,
}

impl Counted {
    fn lines(&self) -> u64 {
        self.newlines.load(Ordering::Relaxed) + u64::from(self.open.load(Ordering::Relaxed))
    }
}

impl Read for LinesOfRange {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.done || buffer.is_empty() {
            return Ok(0);
        }
        let mut read = read_at(&self.file.file, buffer, self.at)?;
        if read == 0 {
            self.done = true;
            return Ok(0);
        }
        // The range ends after the first `\n` at or past its last byte.
        if let Some(end) = self.end {
            let from = (end.saturating_sub(1).saturating_sub(self.at) as usize).min(read);
            if let Some(newline) = memchr::memchr(b'\n', &buffer[from..read]) {
                read = from + newline + 1;
                self.done = true;
            }
        }
        let passed = &buffer[..read];
        self.counted.newlines.fetch_add(
            memchr::memchr_iter(b'\n', passed).count() as u64,
            Ordering::Relaxed,
        );
        self.counted
            .open
            .store(passed.last() != Some(&b'\n'), Ordering::Relaxed);
        self.at += read as u64;
        Ok(read)
    }
}

/// Places the items of ranges, read apart and each numbered from its own start, after the
/// ranges of the same input before them: handed the ranges of an input in order, it numbers
/// their items as one reading of the whole input would, and drops what follows a range that lost
/// the rest of the input.
#[derive(Debug, Default)]
pub struct Numbering {
    /// The input being numbered, with the lines and items of its ranges placed so far.
    input: Option<usize>,
    lines: u64,
    items: u64,
    lost: bool,
}

/// Where a part of a range's items goes: the range's input and, on the part that ends the range,
/// the range's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placing {
    /// Index of the input.
    pub input: usize,
    /// On the range's last part: its lines, its items and whether it lost the rest of the input.
    pub range_end: Option<(u64, u64, bool)>,
}

impl Numbering {
    /// Numbers `items` (a part of a range, in order) after what was placed before; `false` when
    /// the input was lost before them (they are not to be delivered).
    pub fn place(&mut self, placing: Placing, items: &mut [Result<Spot, InputError>]) -> bool {
        if self.input != Some(placing.input) {
            *self = Numbering {
                input: Some(placing.input),
                ..Numbering::default()
            };
        }
        if self.lost {
            return false;
        }
        for item in items.iter_mut() {
            let spot = match item {
                Ok(spot) => spot,
                Err(error) => &mut error.location.spot,
            };
            spot.line += self.lines;
            spot.item += self.items;
        }
        if let Some((lines, items, lost)) = placing.range_end {
            self.lines += lines;
            self.items += items;
            self.lost = lost;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::{input_file, remove_input_file};
    use crate::input::{Input, Position};
    use std::path::Path;

    /// An item as a person reads it: where, and the event's text or what is wrong.
    type Seen = (u64, Option<u64>, u64, Result<String, String>);

    fn seen(item: Result<Spot, InputError>, text: &[u8]) -> Seen {
        match item {
            Ok(spot) => (
                spot.line,
                spot.record,
                spot.item,
                Ok(String::from_utf8(text.to_vec()).expect("UTF-8 event")),
            ),
            Err(error) => (
                error.location.spot.line,
                error.location.spot.record,
                error.location.spot.item,
                Err(error.problem.to_string()),
            ),
        }
    }

    /// The file read whole, line by line.
    fn whole(path: &Path) -> Vec<Seen> {
        let mut reader = InputReader::new([Input::File(path.to_path_buf())]);
        let mut seen_all = Vec::new();
        let mut text = Vec::new();
        while let Some(item) = reader.next_into(&mut text) {
            seen_all.push(seen(item, &text));
            text.clear();
        }
        seen_all
    }

    /// The file read in ranges of `bytes`, each apart, then numbered in order.
    fn in_ranges(path: &Path, bytes: u64) -> Vec<Seen> {
        let mut reader = InputReader::new([Input::File(path.to_path_buf())]);
        let file = Arc::new(reader.plain_file().expect("a plain file"));
        assert!(reader.is_done());
        let mut numbering = Numbering::default();
        let mut seen_all = Vec::new();
        let mut text = Vec::new();
        for range in file.ranges(bytes) {
            let RangeRead {
                mut items,
                ends,
                lines,
                lost,
            } = range.read(&mut text);
            let placing = Placing {
                input: range.input(),
                range_end: Some((lines, items.len() as u64, lost)),
            };
            if !numbering.place(placing, &mut items) {
                continue;
            }
            let mut events = ends.iter().scan(0, |start, &end| {
                let event = &text[*start..end];
                *start = end + 1;
                Some(event)
            });
            assert_eq!(text.len(), ends.last().map_or(0, |end| end + 1));
            for item in items {
                let event = if item.is_ok() {
                    events.next().expect("an event's text")
                } else {
                    &[]
                };
                seen_all.push(seen(item, event));
            }
        }
        seen_all
    }

    fn same_in_every_range_size(bytes: &[u8]) {
        let path = input_file(bytes);
        let expected = whole(&path);
        for size in (1..=bytes.len() as u64 + 2).chain([4096, 1 << 20]) {
            assert_eq!(
                in_ranges(&path, size),
                expected,
                "ranges of {size} bytes of {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        remove_input_file(path);
    }

    #[test]
    fn ranges_read_the_items_of_one_whole_reading() {
        same_in_every_range_size(b"{\"a\":1}\n{\"bb\":22}\n{\"ccc\":333}\n");
        same_in_every_range_size(b"{\"a\":1}\n{\"bb\":22}\n{\"ccc\":333}");
        same_in_every_range_size(b"");
        same_in_every_range_size(b"\n\n\n");
        same_in_every_range_size(b"x");
        // Blank, padded and CRLF lines; a line that is not UTF-8; characters of several bytes.
        same_in_every_range_size(
            b"{\"a\":1}\n\n  \r\n {\"b\":2} \r\n\xff\xfe\n{\"\xc3\xa9\xe2\x80\xa6\":3}\r\n\n",
        );
        // Delivery documents on one line, whole and broken, among events.
        same_in_every_range_size(
            b"{\"x\":1}\n{\"Records\":[{\"eventID\":\"1\"},{\"eventID\":\"2\"}]}\n{\"Records\": 5}\n{\"y\":2}\n",
        );
        // A line that opens a delivery document the next lines do not close.
        same_in_every_range_size(b"{\"x\":1}\n{\"Records\": [\n{\"a\":1},\n]}\n{\"y\":2}\n");
    }

    #[test]
    fn a_line_longer_than_a_range_read_straight_is_read_line_by_line() {
        let mut bytes = b"{\"a\":1}\n{\"long\":\"".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', DIRECT_LIMIT + 10));
        bytes.extend_from_slice(b"\"}\n{\"b\":2}\n");
        let path = input_file(&bytes);
        let expected = whole(&path);
        assert_eq!(expected.len(), 3);
        for size in [SMALLEST_RANGE, 3, DIRECT_LIMIT as u64] {
            assert_eq!(in_ranges(&path, size), expected, "ranges of {size} bytes");
        }
        remove_input_file(path);
    }

    #[test]
    fn a_last_line_read_past_its_range_in_growing_steps_is_whole() {
        // Lines around the first step past a range's end, and longer than several steps together.
        let mut bytes = Vec::new();
        for length in [
            10,
            FIRST_STEP - 20,
            FIRST_STEP + 7,
            3 * FIRST_STEP,
            STEP + 5,
            3 * STEP,
            40,
        ] {
            bytes.extend_from_slice(b"{\"x\":\"");
            bytes.extend(std::iter::repeat_n(b'x', length));
            bytes.extend_from_slice(b"\"}\n");
        }
        let path = input_file(&bytes);
        let expected = whole(&path);
        assert_eq!(expected.len(), 7);
        for size in [SMALLEST_RANGE, 5_000, 9_000, STEP as u64, 100_000, 1 << 20] {
            assert_eq!(in_ranges(&path, size), expected, "ranges of {size} bytes");
        }
        remove_input_file(path);
    }

    #[test]
    fn a_range_spans_about_one_batch_of_the_files_first_lines() {
        let line = format!("{{\"event\":\"{}\"}}\n", "x".repeat(87));
        assert_eq!(line.len(), 100);
        let path = input_file(line.repeat(50).as_bytes());
        let file = InputReader::new([Input::File(path.clone())])
            .plain_file()
            .expect("a plain file");
        // Three quarters of 256 lines of 100 bytes; never under the smallest range nor over the
        // batch's bytes.
        assert_eq!(file.range_bytes(256, 8 << 20), 19_200);
        assert_eq!(file.range_bytes(1, 8 << 20), SMALLEST_RANGE);
        assert_eq!(file.range_bytes(1_000_000, 1 << 20), 1 << 20);
        remove_input_file(path);
    }

    #[test]
    fn only_plain_files_from_their_start_are_read_in_ranges() {
        let delivery = input_file(b"\n {\n \"Records\": [{\"a\":1}]}\n");
        let mut reader = InputReader::new([Input::File(delivery.clone())]);
        assert!(reader.plain_file().is_none());
        assert_eq!(whole(&delivery).len(), 1);

        let gzip = input_file(&[0x1f, 0x8b, 8, 0]);
        assert!(
            InputReader::new([Input::File(gzip.clone())])
                .plain_file()
                .is_none()
        );
        assert!(
            InputReader::new([Input::File("/nonexistent/newterms".into())])
                .plain_file()
                .is_none()
        );
        assert!(InputReader::new([Input::Stdin]).plain_file().is_none());

        let plain = input_file(b"{\"a\":1}\n{\"b\":2}\n");
        let resumed = Position { input: 0, items: 1 };
        assert!(
            InputReader::resume([Input::File(plain.clone())], resumed)
                .plain_file()
                .is_none()
        );
        let from_start = Position { input: 0, items: 0 };
        assert!(
            InputReader::resume([Input::File(plain.clone())], from_start)
                .plain_file()
                .is_some()
        );
        for path in [delivery, gzip, plain] {
            remove_input_file(path);
        }
    }
}
