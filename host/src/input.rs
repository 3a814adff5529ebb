//! Reading events: NDJSON (raw CloudTrail, ECS, or both mixed), CloudTrail delivery files
//! (`{"Records": [...]}`), gzip-compressed or not, from files or standard input.
//!
//! Every event keeps its [`Location`] (source, line, record within a delivery document), so that a bad
//! one is reported where a person can find it. A bad line is an [`InputError`] and reading goes on.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use flate2::bufread::MultiGzDecoder;

mod delivery;
mod inflate;
mod ranges;

use delivery::{Document, Next, Stop};
use inflate::Inflating;
pub(crate) use ranges::{Numbering, Placing, PlainFile, Range, RangeRead};

/// Longest line (or delivery record) read; a longer one is reported and skipped, so one runaway
/// line cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// Where events are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
    /// A stream the caller opened (a socket, a pipe, a decoder): read once, like standard input.
    Stream(Stream),
}

/// A named reader handed to [`Input::Stream`]. Clones share the one reader; equal when they do.
#[derive(Clone)]
pub struct Stream {
    name: Arc<str>,
    reader: Arc<Mutex<Option<Box<dyn Read + Send>>>>,
}

impl Stream {
    /// `reader`, reported as `name` in locations.
    pub fn new(name: &str, reader: impl Read + Send + 'static) -> Self {
        Self {
            name: name.into(),
            reader: Arc::new(Mutex::new(Some(Box::new(reader)))),
        }
    }

    /// The reader, the first time; an error after.
    fn take(&self) -> io::Result<Box<dyn Read + Send>> {
        self.reader
            .lock()
            .ok()
            .and_then(|mut reader| reader.take())
            .ok_or_else(|| io::Error::other("the stream was already read"))
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Stream").field(&self.name).finish()
    }
}

impl PartialEq for Stream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.reader, &other.reader)
    }
}

impl Eq for Stream {}

impl Input {
    /// `-` is standard input; anything else a file.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::File(arg.into())
        }
    }

    fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".into(),
            Input::File(path) => path.display().to_string(),
            Input::Stream(stream) => stream.name.to_string(),
        }
    }

    /// Whether the input is a stream read once (standard input or [`Input::Stream`]): reading it may
    /// wait on a producer, and a resumed scan reads it anew rather than passing over what it held.
    pub fn is_stream(&self) -> bool {
        !matches!(self, Input::File(_))
    }

    /// Opens the input, decompressing gzip when its magic number says so (on a thread of its own,
    /// see `input/inflate.rs`).
    pub fn open(&self) -> io::Result<Opened> {
        let raw: Box<dyn Read + Send> = match self {
            Input::Stdin => Box::new(io::stdin()),
            Input::File(path) => Box::new(File::open(path)?),
            Input::Stream(stream) => stream.take()?,
        };
        let mut reader = BufReader::with_capacity(1 << 20, raw);
        let is_gzip = reader.fill_buf()?.starts_with(&GZIP_MAGIC);
        Ok(if is_gzip {
            let decoder: Box<dyn Read + Send> =
                Box::new(Inflating::new(MultiGzDecoder::new(reader))?);
            BufReader::with_capacity(1 << 16, decoder)
        } else {
            reader
        })
    }
}

/// How far a scan got: everything before it was read and processed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Index of the input in the list the reader was given.
    pub input: usize,
    /// Items (events and errors) of that input already consumed.
    pub items: u64,
}

/// Where an event or an error is, with its input's name: a [`Spot`] for a person to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name, or `<stdin>`.
    pub source: Arc<str>,
    /// Where in it.
    pub spot: Spot,
}

impl Location {
    /// The position just after this item.
    pub fn next_position(&self) -> Position {
        self.spot.next_position()
    }
}

/// Where an item is, without its input's name ([`InputReader::names`] has it): what
/// [`InputReader::next_into`] hands over for each event, so that a scan's two threads do not count
/// a shared name up and down for every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    /// 1-based line (for a delivery document, the line it starts on).
    pub line: u64,
    /// 1-based index in a delivery document's `Records`.
    pub record: Option<u64>,
    /// Index of the input in the reader's list.
    pub input: usize,
    /// 0-based index of this item among the input's items.
    pub item: u64,
}

impl Spot {
    /// The position just after this item.
    pub fn next_position(&self) -> Position {
        Position {
            input: self.input,
            items: self.item + 1,
        }
    }

    /// The location, in the input named `source`.
    pub fn located(self, source: Arc<str>) -> Location {
        Location { source, spot: self }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.spot.line)?;
        if let Some(record) = self.spot.record {
            write!(f, " (record {record})")?;
        }
        Ok(())
    }
}

/// One event's JSON text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where.
    pub location: Location,
    /// The event, as JSON text.
    pub text: String,
}

/// Something in the input that is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// Where.
    pub location: Location,
    /// What is wrong.
    pub problem: InputProblem,
    /// Whether the rest of the input was lost (it could not be opened or read), rather than one
    /// line or document skipped.
    pub unreadable: bool,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.problem)
    }
}

/// What is wrong with an input item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputProblem {
    /// The input could not be opened (what the operating system said).
    Open(String),
    /// Reading failed (a truncated gzip stream, say): the rest of the input is lost.
    Read(String),
    /// A line of this many bytes, longer than [`MAX_LINE_BYTES`]: skipped.
    LineTooLong(usize),
    /// A delivery record of this many bytes, longer than [`MAX_LINE_BYTES`]: skipped.
    RecordTooLong(u64),
    /// Not UTF-8: the offset of the first invalid byte.
    NotUtf8(usize),
    /// Not a delivery document from here on: why.
    MalformedDelivery(&'static str),
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputProblem::Open(error) => write!(f, "cannot read: {error}"),
            InputProblem::Read(error) => write!(f, "read error: {error}"),
            InputProblem::LineTooLong(length) => {
                write!(
                    f,
                    "line of {length} bytes is longer than {MAX_LINE_BYTES}: skipped"
                )
            }
            InputProblem::RecordTooLong(length) => {
                write!(
                    f,
                    "record of {length} bytes is longer than {MAX_LINE_BYTES}: skipped"
                )
            }
            InputProblem::NotUtf8(offset) => write!(f, "not UTF-8 (invalid byte at {offset})"),
            InputProblem::MalformedDelivery(why) => write!(f, "malformed delivery document: {why}"),
        }
    }
}

/// An input opened for reading (inflated, when it is gzip).
pub type Opened = BufReader<Box<dyn Read + Send>>;

/// Reads events from one input after another.
pub struct InputReader {
    inputs: VecDeque<Input>,
    /// Every input's name, by index.
    names: Vec<Arc<str>>,
    /// Index of the next input to open.
    next_input: usize,
    current: Option<OpenInput>,
    /// Items of the current input still to pass over silently (resuming a scan).
    to_skip: u64,
    resume_at: Option<Position>,
    /// Items numbered so far in the input opened last.
    numbered: u64,
    /// The input after the current one, with its index, opened with it when it is a gzip file: it
    /// inflates on its own thread while the current one is read, instead of after it (a rollout
    /// over many small delivery files otherwise waits on each file's first block).
    ahead: Option<(usize, io::Result<Opened>)>,
}

/// One thing read: an event, or why something could not be read as one.
pub type Item = Result<Record, InputError>;

struct OpenInput {
    name: Arc<str>,
    index: usize,
    /// Standard input: reading it may wait on a producer.
    interactive: bool,
    reader: Opened,
    line: u64,
    /// The delivery document being read, if any.
    delivery: Option<Delivery>,
    /// Whether it is a whole input, which may be one delivery document over many lines (rather
    /// than a range of a file's lines, see `input/ranges.rs`).
    whole: bool,
}

/// A delivery document being read, record by record.
struct Delivery {
    document: Document,
    /// The line it starts on.
    line: u64,
    /// The one line that holds it (a document inside NDJSON); none when it is the input itself (a
    /// delivery file, streamed).
    inline: Option<io::Cursor<Vec<u8>>>,
}

impl InputReader {
    /// A reader of `inputs`, in order. Files are opened as they are reached.
    pub fn new(inputs: impl IntoIterator<Item = Input>) -> Self {
        let inputs: VecDeque<Input> = inputs.into_iter().collect();
        Self {
            names: inputs.iter().map(|input| input.name().into()).collect(),
            inputs,
            next_input: 0,
            current: None,
            to_skip: 0,
            resume_at: None,
            numbered: 0,
            ahead: None,
        }
    }

    /// A reader that starts at `position`: earlier inputs are not opened, and the first
    /// `position.items` items of that input are read but not returned. Standard input is a new
    /// stream each time, so nothing of it is passed over.
    pub fn resume(inputs: impl IntoIterator<Item = Input>, position: Position) -> Self {
        let mut reader = Self::new(inputs);
        let skipped = position.input.min(reader.inputs.len());
        reader.inputs.drain(..skipped);
        reader.next_input = skipped;
        reader.resume_at = Some(position);
        reader
    }

    /// The name of each input, by index (as in [`Spot::input`]).
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// Whether the next item may have to wait on a producer: standard input with nothing buffered.
    /// A reader that batches items hands over what it has at such a point, so that a slow stream is
    /// not held back.
    pub fn is_idle(&self) -> bool {
        self.current.as_ref().is_some_and(|input| {
            // A document on one line is in memory already: only the input itself can wait.
            input.interactive
                && input
                    .delivery
                    .as_ref()
                    .is_none_or(|delivery| delivery.inline.is_none())
                && input.reader.buffer().is_empty()
        })
    }

    fn open_next(&mut self) -> Option<Result<(), InputError>> {
        let input = self.inputs.pop_front()?;
        let index = self.next_input;
        self.next_input += 1;
        self.numbered = 0;
        self.to_skip = match self.resume_at {
            Some(position) if position.input == index && !input.is_stream() => position.items,
            _ => 0,
        };
        let name = self.name_of(index, &input);
        let opened = match self.ahead.take() {
            Some((ahead, opened)) if ahead == index => opened,
            _ => input.open(),
        };
        self.ahead = match self.inputs.front() {
            Some(next @ Input::File(path)) if is_gzip_file(path) => Some((index + 1, next.open())),
            _ => None,
        };
        Some(match opened {
            Ok(reader) => {
                self.current = Some(OpenInput {
                    name,
                    index,
                    interactive: input.is_stream(),
                    reader,
                    line: 0,
                    delivery: None,
                    whole: true,
                });
                Ok(())
            }
            Err(error) => Err(InputError {
                location: Spot {
                    line: 0,
                    record: None,
                    input: index,
                    item: 0,
                }
                .located(name),
                problem: InputProblem::Open(error.to_string()),
                unreadable: true,
            }),
        })
    }

    /// The next item of the current input, an event's text appended to `text`.
    fn read_from_current(&mut self, text: &mut Vec<u8>) -> Option<Result<Spot, InputError>> {
        let input = self.current.as_mut()?;
        loop {
            let first_line = input.line + 1;
            let spot = |line| Spot {
                line,
                record: None,
                input: input.index,
                item: 0,
            };
            if let Some(delivery) = &mut input.delivery {
                let inline = delivery.inline.is_some();
                let reader: &mut dyn BufRead = match &mut delivery.inline {
                    Some(line) => line,
                    None => &mut input.reader,
                };
                let start = text.len();
                let read = delivery.document.next(reader, text, MAX_LINE_BYTES);
                let mut at = spot(delivery.line);
                at.record = Some(delivery.document.records);
                let located = |at: Spot| at.located(Arc::clone(&input.name));
                match read {
                    Ok(Next::Record) => {
                        if let Some(valid_up_to) = utf8_error(&text[start..]) {
                            text.truncate(start);
                            return Some(Err(InputError {
                                location: located(at),
                                problem: InputProblem::NotUtf8(valid_up_to),
                                unreadable: false,
                            }));
                        }
                        return Some(Ok(at));
                    }
                    Ok(Next::TooLong(length)) => {
                        return Some(Err(InputError {
                            location: located(at),
                            problem: InputProblem::RecordTooLong(length),
                            unreadable: false,
                        }));
                    }
                    Ok(Next::End) => {
                        let trailing = delivery.inline.as_mut().is_some_and(|line| {
                            line.fill_buf()
                                .is_ok_and(|rest| !rest.trim_ascii().is_empty())
                        });
                        if !inline {
                            // The rest of the file is read as lines, from the one the document
                            // ends on.
                            input.line = delivery.line + delivery.document.newlines - 1;
                        }
                        input.delivery = None;
                        if trailing {
                            let mut at = spot(input.line);
                            at.record = None;
                            return Some(Err(InputError {
                                location: located(at),
                                problem: InputProblem::MalformedDelivery("trailing characters"),
                                unreadable: false,
                            }));
                        }
                        continue;
                    }
                    Err(stop) => {
                        text.truncate(start);
                        // The record that could not be read, so that a person knows how many
                        // were.
                        let mut at = spot(delivery.line + delivery.document.newlines);
                        at.record = delivery
                            .document
                            .in_records()
                            .then_some(delivery.document.records + 1);
                        let location = located(at);
                        // A document that is a whole file cannot be read past its fault: the rest of
                        // the file is lost, which the scan must report. A document on one line
                        // loses that line only.
                        if inline {
                            input.delivery = None;
                        } else {
                            self.current = None;
                        }
                        let unreadable = !inline || matches!(stop, Stop::Read(_));
                        return Some(Err(InputError {
                            location,
                            problem: match stop {
                                Stop::Read(error) => InputProblem::Read(error.to_string()),
                                Stop::Malformed(why) => InputProblem::MalformedDelivery(why),
                            },
                            unreadable,
                        }));
                    }
                }
            }
            if first_line == 1 && input.whole && starts_delivery_document(&mut input.reader) {
                // A delivery file may be pretty-printed over many lines: streamed from the input.
                input.delivery = Some(Delivery {
                    document: Document::new(),
                    line: 1,
                    inline: None,
                });
                continue;
            }

            // The line is read straight into `text`, then trimmed there.
            let start = text.len();
            let read = read_line(&mut input.reader, text);
            input.line += 1;
            let line_spot = spot(input.line);
            let line_location = || line_spot.located(Arc::clone(&input.name));
            match read {
                Err(error) => {
                    text.truncate(start);
                    let location = line_location();
                    self.current = None;
                    return Some(Err(InputError {
                        location,
                        problem: InputProblem::Read(error.to_string()),
                        unreadable: true,
                    }));
                }
                Ok(LineRead::End) => {
                    self.current = None;
                    return None;
                }
                Ok(LineRead::TooLong(length)) => {
                    return Some(Err(InputError {
                        location: line_location(),
                        problem: InputProblem::LineTooLong(length),
                        unreadable: false,
                    }));
                }
                Ok(LineRead::Line) => {}
            }
            let line = &text[start..];
            let leading = line.len() - line.trim_ascii_start().len();
            let trimmed = line.trim_ascii().len();
            text.truncate(start + leading + trimmed);
            text.drain(start..start + leading);
            if trimmed == 0 {
                continue;
            }
            if let Some(valid_up_to) = utf8_error(&text[start..]) {
                text.truncate(start);
                return Some(Err(InputError {
                    location: line_location(),
                    problem: InputProblem::NotUtf8(valid_up_to),
                    unreadable: false,
                }));
            }
            if is_delivery_document(&text[start..]) {
                input.delivery = Some(Delivery {
                    document: Document::new(),
                    line: input.line,
                    inline: Some(io::Cursor::new(text.split_off(start))),
                });
                continue;
            }
            return Some(Ok(line_spot));
        }
    }

    /// The next item, numbered within its input; `None` at the end of the last input, or with
    /// `one_input` at the end of the input being read (the next is opened by the next call).
    fn next_numbered(
        &mut self,
        text: &mut Vec<u8>,
        one_input: bool,
    ) -> Option<Result<Spot, InputError>> {
        let mut item = loop {
            if self.current.is_some() {
                match self.read_from_current(text) {
                    Some(item) => break item,
                    None if one_input => return None,
                    None => continue,
                }
            }
            match self.open_next()? {
                Ok(()) => continue,
                Err(error) => break Err(error),
            }
        };
        match &mut item {
            Ok(spot) => spot.item = self.numbered,
            Err(error) => error.location.spot.item = self.numbered,
        }
        self.numbered += 1;
        Some(item)
    }

    /// The next item, like [`Iterator::next`], but an event's text (UTF-8, trimmed, not empty) is
    /// appended to `text` instead of allocated: a reader that batches events builds its batch in
    /// place.
    pub fn next_into(&mut self, text: &mut Vec<u8>) -> Option<Result<Spot, InputError>> {
        self.next_skipping(text, false)
    }

    /// Like [`InputReader::next_into`], but `None` at the end of each input, so that the caller
    /// may take the next one as a [`PlainFile`] ([`InputReader::plain_file`]) before this reader
    /// opens it; at the end of the last, [`InputReader::is_done`] says so.
    pub(crate) fn next_of_input(&mut self, text: &mut Vec<u8>) -> Option<Result<Spot, InputError>> {
        self.next_skipping(text, true)
    }

    /// Whether every input was read.
    pub(crate) fn is_done(&self) -> bool {
        self.current.is_none() && self.inputs.is_empty()
    }

    /// The next input, when it is a regular file that is neither gzip nor a delivery document (as
    /// its first bytes say, read as opening it would) and is read from its start: taken from this
    /// reader, to be read in ranges by whoever reads them. `None` (the input stays) for any other,
    /// or while an input is being read.
    pub(crate) fn plain_file(&mut self) -> Option<PlainFile> {
        let (index, path) = self.next_file_from_its_start()?;
        let file = File::open(path).ok()?;
        let metadata = file.metadata().ok()?;
        if !metadata.is_file() {
            return None;
        }
        // One read of what `open` would see first (its buffer holds 1 MiB).
        let mut head = vec![0; metadata.len().min(1 << 20) as usize];
        let read = ranges::read_at(&file, &mut head, 0).ok()?;
        let head = &head[..read];
        if head.starts_with(&GZIP_MAGIC) || is_delivery_document(head) {
            return None;
        }
        let input = self.inputs.pop_front()?;
        self.next_input += 1;
        // Not read by this reader: an input opened ahead for it goes.
        self.ahead = None;
        let name = self.name_of(index, &input);
        Some(PlainFile::new(index, name, file, metadata.len(), head))
    }

    /// The next input, when it is a regular file read from its start and at least one input
    /// follows it: taken from this reader, as a reader of that input alone, numbered as this
    /// reader numbers it, so that another thread may read it whole (a gzip or delivery file, which
    /// cannot be read in ranges) while this reader goes on to the next. `None` (the input stays)
    /// for any other, for the last input, or while an input is being read.
    pub(crate) fn whole_file(&mut self) -> Option<InputReader> {
        if self.inputs.len() < 2 {
            return None;
        }
        let (index, path) = self.next_file_from_its_start()?;
        // Anything but a regular file (a pipe, a device, one that cannot be opened) stays with
        // this reader, which reads or reports it as before.
        if !std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file()) {
            return None;
        }
        let input = self.inputs.pop_front()?;
        self.next_input += 1;
        // Read by another reader: an input opened ahead for it goes (its own opens it).
        self.ahead = None;
        // Numbered as this reader's input `index` (its name is the input's own, as here).
        let mut alone = Self::new([input]);
        alone.next_input = index;
        Some(alone)
    }

    /// The next input's index and path, when no input is being read and the next is a file to be
    /// read from its start (not one a resumed scan is part way through).
    fn next_file_from_its_start(&self) -> Option<(usize, &std::path::Path)> {
        if self.current.is_some() {
            return None;
        }
        let Some(Input::File(path)) = self.inputs.front() else {
            return None;
        };
        let index = self.next_input;
        if self
            .resume_at
            .is_some_and(|position| position.input == index && position.items > 0)
        {
            return None;
        }
        Some((index, path))
    }

    /// The name of `input`, the reader's input `index`.
    fn name_of(&self, index: usize, input: &Input) -> Arc<str> {
        self.names
            .get(index)
            .map_or_else(|| input.name().into(), Arc::clone)
    }

    /// A reader of one range of a file's lines (`input/ranges.rs`), numbered from its first line
    /// and item as the input `index` named `name`.
    fn over_part(name: Arc<str>, index: usize, reader: Opened) -> Self {
        Self {
            inputs: VecDeque::new(),
            names: Vec::new(),
            next_input: index + 1,
            current: Some(OpenInput {
                name,
                index,
                interactive: false,
                reader,
                line: 0,
                delivery: None,
                whole: false,
            }),
            to_skip: 0,
            resume_at: None,
            numbered: 0,
            ahead: None,
        }
    }

    fn next_skipping(
        &mut self,
        text: &mut Vec<u8>,
        one_input: bool,
    ) -> Option<Result<Spot, InputError>> {
        let start = text.len();
        loop {
            let item = self.next_numbered(text, one_input)?;
            if self.to_skip > 0 {
                self.to_skip -= 1;
                text.truncate(start);
                continue;
            }
            return Some(item);
        }
    }
}

impl Iterator for InputReader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let mut text = Vec::new();
        let item = self.next_into(&mut text)?;
        Some(item.map(|spot| {
            let source = self
                .names
                .get(spot.input)
                .map_or_else(|| "".into(), Arc::clone);
            Record {
                location: spot.located(source),
                // `next_into` validated it.
                text: String::from_utf8(text)
                    .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()),
            }
        }))
    }
}

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether the file at `path` starts with gzip's magic number (two bytes read, nothing opened
/// further).
fn is_gzip_file(path: &std::path::Path) -> bool {
    let mut magic = [0; GZIP_MAGIC.len()];
    File::open(path)
        .and_then(|file| ranges::read_at(&file, &mut magic, 0))
        .is_ok_and(|read| read == GZIP_MAGIC.len() && magic == GZIP_MAGIC)
}

/// Where `bytes` stops being UTF-8, if it does: one vector pass for the usual valid text, the
/// standard library's for the place of a fault.
fn utf8_error(bytes: &[u8]) -> Option<usize> {
    simdutf8::basic::from_utf8(bytes).err()?;
    std::str::from_utf8(bytes)
        .err()
        .map(|error| error.valid_up_to())
}

enum LineRead {
    Line,
    End,
    TooLong(usize),
}

/// Appends up to and including the next `\n` to `buffer`, or reports a line longer than
/// [`MAX_LINE_BYTES`] after skipping it (and leaving `buffer` as it was).
fn read_line(reader: &mut dyn BufRead, buffer: &mut Vec<u8>) -> io::Result<LineRead> {
    let start = buffer.len();
    let mut length = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(match length {
                0 => LineRead::End,
                _ if length > MAX_LINE_BYTES => LineRead::TooLong(length),
                _ => LineRead::Line,
            });
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(newline) => (&available[..=newline], true),
            None => (available, false),
        };
        length += chunk.len();
        if length <= MAX_LINE_BYTES {
            buffer.extend_from_slice(chunk);
        } else {
            buffer.truncate(start);
        }
        let consumed = chunk.len();
        reader.consume(consumed);
        if done {
            return Ok(if length > MAX_LINE_BYTES {
                LineRead::TooLong(length)
            } else {
                LineRead::Line
            });
        }
    }
}

/// Whether `bytes` opens a `{"Records": …}` document (white space allowed).
fn is_delivery_document(bytes: &[u8]) -> bool {
    let rest = bytes.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"{") else {
        return false;
    };
    rest.trim_ascii_start().starts_with(b"\"Records\"")
}

fn starts_delivery_document(reader: &mut impl BufRead) -> bool {
    reader.fill_buf().is_ok_and(is_delivery_document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A new file of `bytes`, in a folder of this test binary's; for [`remove_input_file`].
    pub(super) fn input_file(bytes: &[u8]) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let directory = std::env::temp_dir().join(format!("newterms-input-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("temp dir");
        let path = directory.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
        std::fs::write(&path, bytes).expect("write input");
        path
    }

    /// Removes a file of [`input_file`], and their folder with the last of them (while another
    /// test still has a file there, removing the folder fails).
    pub(super) fn remove_input_file(path: PathBuf) {
        let _ = std::fs::remove_file(&path);
        if let Some(directory) = path.parent() {
            let _ = std::fs::remove_dir(directory);
        }
    }

    fn read_all(bytes: &[u8]) -> Vec<Result<Record, InputError>> {
        let path = input_file(bytes);
        let items = InputReader::new([Input::File(path.clone())]).collect();
        remove_input_file(path);
        items
    }

    fn texts(items: &[Result<Record, InputError>]) -> Vec<String> {
        items
            .iter()
            .map(|item| match item {
                Ok(record) => format!("{} {}", record.location, record.text),
                Err(error) => format!("error {error}"),
            })
            .map(|line| {
                line.split_once(':')
                    .map_or(line.clone(), |(_, rest)| rest.to_owned())
            })
            .collect()
    }

    #[test]
    fn reads_ndjson_with_line_numbers_and_errors() {
        let items = read_all(b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n\xff\xfe\n{\"c\":3}");
        assert_eq!(
            texts(&items),
            [
                "1 {\"a\":1}",
                "4 {\"b\":2}",
                "5: not UTF-8 (invalid byte at 0)",
                "6 {\"c\":3}"
            ]
        );
    }

    #[test]
    fn expands_pretty_printed_delivery_files() {
        let items = read_all(
            b"{\n  \"Records\": [\n    {\"eventID\": \"1\"},\n    {\"eventID\": \"2\"}\n  ]\n}\n",
        );
        assert_eq!(
            texts(&items),
            [
                "1 (record 1) {\"eventID\": \"1\"}",
                "1 (record 2) {\"eventID\": \"2\"}"
            ]
        );
    }

    #[test]
    fn expands_delivery_documents_inside_ndjson() {
        let items = read_all(b"{\"x\":1}\n{\"Records\":[{\"eventID\":\"1\"}]}\n{\"Records\": 5}\n");
        let texts = texts(&items);
        assert_eq!(texts[0], "1 {\"x\":1}");
        assert_eq!(texts[1], "2 (record 1) {\"eventID\":\"1\"}");
        assert!(
            texts[2].starts_with("3: malformed delivery document"),
            "{}",
            texts[2]
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_reported_where_it_stops_being_so() {
        assert_eq!(utf8_error("{\"a\":\"é…\"}".as_bytes()), None);
        assert_eq!(utf8_error(b"{\"a\":\"\xff\"}"), Some(6));
        // A character cut short at the end, and one whose bytes are too many.
        assert_eq!(utf8_error(b"{\"a\":\"\xc3"), Some(6));
        assert_eq!(utf8_error(b"ab\xe2\x80\xa6\x80"), Some(5));
        // Past the 64 bytes a vector pass reads at once.
        let mut long = vec![b'a'; 200];
        long[150] = 0xc0;
        assert_eq!(utf8_error(&long), Some(150));
    }

    #[test]
    fn next_into_appends_trimmed_events_to_one_buffer() {
        let path = std::env::temp_dir().join(format!("newterms-into-{}", std::process::id()));
        let lines = b"  {\"a\":1} \r\n\n\xff\n\t{\"Records\":[{\"b\":2},{\"c\":3}]}\n{\"d\":4}";
        std::fs::write(&path, lines).expect("write input");
        let mut reader = InputReader::new([Input::File(path.clone())]);
        let mut text = b"kept|".to_vec();
        let mut seen = Vec::new();
        while let Some(item) = reader.next_into(&mut text) {
            seen.push(
                item.map(|spot| {
                    spot.located(Arc::clone(&reader.names()[spot.input]))
                        .to_string()
                })
                .map_err(|error| error.problem),
            );
            text.push(b'|');
        }
        let _ = std::fs::remove_file(path);
        assert_eq!(
            String::from_utf8_lossy(&text),
            "kept|{\"a\":1}||{\"b\":2}|{\"c\":3}|{\"d\":4}|"
        );
        let name = std::env::temp_dir().join(format!("newterms-into-{}", std::process::id()));
        let at = |place: &str| Ok(format!("{}:{place}", name.display()));
        assert_eq!(seen[0], at("1"));
        assert_eq!(seen[1], Err(InputProblem::NotUtf8(0)));
        assert_eq!(seen[2], at("4 (record 1)"));
        assert_eq!(seen[3], at("4 (record 2)"));
        assert_eq!(seen[4], at("5"));
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn resuming_leaves_no_skipped_text_behind() {
        let path = std::env::temp_dir().join(format!("newterms-resume-{}", std::process::id()));
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n").expect("write input");
        let position = Position { input: 0, items: 2 };
        let mut reader = InputReader::resume([Input::File(path.clone())], position);
        let mut text = Vec::new();
        let location = reader
            .next_into(&mut text)
            .expect("an item")
            .expect("an event");
        let _ = std::fs::remove_file(path);
        assert_eq!(text, b"{\"c\":3}");
        assert_eq!((location.line, location.item), (3, 2));
        assert!(reader.next_into(&mut text).is_none());
    }

    #[test]
    fn resuming_inside_a_streamed_delivery_file_passes_over_its_first_records() {
        let path = std::env::temp_dir().join(format!("newterms-resume-doc-{}", std::process::id()));
        std::fs::write(
            &path,
            b"{\n \"Records\": [\n  {\"a\":1},\n  {\"b\":2},\n  {\"c\":3}\n ]\n}\n{\"d\":4}\n",
        )
        .expect("write input");
        let position = Position { input: 0, items: 2 };
        let mut reader = InputReader::resume([Input::File(path.clone())], position);
        let mut text = Vec::new();
        let mut spots = Vec::new();
        while let Some(item) = reader.next_into(&mut text) {
            spots.push(item.expect("an event"));
            text.push(b'|');
        }
        let _ = std::fs::remove_file(path);
        assert_eq!(text, b"{\"c\":3}|{\"d\":4}|");
        let places: Vec<_> = spots
            .iter()
            .map(|spot| (spot.line, spot.record, spot.item))
            .collect();
        assert_eq!(places, [(1, Some(3), 2), (8, None, 3)]);
    }

    #[test]
    fn decompresses_gzip() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"{\"a\":1}\n{\"b\":2}\n").expect("gzip");
        let items = read_all(&encoder.finish().expect("gzip"));
        assert_eq!(texts(&items), ["1 {\"a\":1}", "2 {\"b\":2}"]);
    }

    /// Gzip inputs opened ahead (each inflating while the one before is read) give what each
    /// gives read alone, in order, numbered as the inputs they are: files whole, truncated, empty,
    /// plain and delivery documents among them.
    #[test]
    fn gzip_inputs_opened_ahead_read_as_each_alone() {
        let gzip = |bytes: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).expect("gzip");
            encoder.finish().expect("gzip")
        };
        let lines = |from: usize, count: usize| -> Vec<u8> {
            (from..from + count)
                .flat_map(|index| format!("{{\"n\":{index}}}\n").into_bytes())
                .collect()
        };
        let truncated = gzip(&lines(100, 5_000));
        let contents = [
            gzip(&lines(0, 3)),
            gzip(&lines(10, 20_000)),
            truncated[..truncated.len() / 2].to_vec(),
            gzip(b""),
            lines(40, 4),
            gzip(b"{\"Records\": [{\"a\": 1}, {\"b\": 2}]}"),
            gzip(&lines(50, 2)),
        ];
        let directory = std::env::temp_dir().join(format!("newterms-ahead-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("temp dir");
        let paths: Vec<PathBuf> = contents
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                let path = directory.join(format!("{index}.gz"));
                std::fs::write(&path, bytes).expect("write input");
                path
            })
            .collect();
        let seen = |items: Vec<Item>| -> Vec<String> {
            items
                .into_iter()
                .map(|item| match item {
                    Ok(record) => format!("{:?} {}", record.location.spot, record.text),
                    Err(error) => format!("{:?} {error}", error.location.spot),
                })
                .collect()
        };
        let together = seen(InputReader::new(paths.iter().cloned().map(Input::File)).collect());
        let mut alone = Vec::new();
        for (index, path) in paths.iter().enumerate() {
            let mut reader = InputReader::new([Input::File(path.clone())]);
            let items: Vec<Item> = reader.by_ref().collect();
            alone.extend(seen(items).into_iter().map(|line| {
                // Numbered as the `index`-th input.
                line.replacen("input: 0,", &format!("input: {index},"), 1)
            }));
        }
        assert!(together.len() > 20_000, "{} items", together.len());
        assert_eq!(together, alone);
        assert!(together.iter().any(|line| line.contains("read error")));
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn unreadable_file_is_an_error_and_reading_goes_on() {
        let items: Vec<_> =
            InputReader::new([Input::File("/nonexistent/newterms".into())]).collect();
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }
}
