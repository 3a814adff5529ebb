//! The `Records` array of a CloudTrail delivery document (`{"Records": [...]}`), read one record at
//! a time straight into the caller's buffer: a delivery file of any size is read in the memory of
//! its largest record, pretty-printed or not.
//!
//! Only the document's structure is checked here (braces, brackets, strings, commas); each record's
//! JSON is the rule's to judge, so a broken record is that record's error and the others stand.

use std::io::{self, BufRead};

/// Why a delivery document stopped being read.
#[derive(Debug)]
pub enum Stop {
    /// The input failed under it (a truncated gzip stream, say).
    Read(io::Error),
    /// It is not a delivery document from here on.
    Malformed(&'static str),
}

impl From<io::Error> for Stop {
    fn from(error: io::Error) -> Self {
        Stop::Read(error)
    }
}

/// What came next in a document.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A record, its text appended to the buffer.
    Record,
    /// A record longer than the limit (this many bytes): passed over, nothing appended.
    TooLong(u64),
    /// The document's closing brace.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before `{"Records": [`.
    Open,
    /// In the array; `true` before its first record.
    Records(bool),
    /// After the array: other members, then `}`.
    Rest,
    Done,
}

/// One delivery document being read.
#[derive(Debug)]
pub struct Document {
    stage: Stage,
    /// Records read so far (the last one's 1-based number).
    pub records: u64,
    /// Line breaks read since the document's first byte.
    pub newlines: u64,
    /// Whether records are read a block at a time where they can be (off only to test that it
    /// reads as byte by byte).
    in_blocks: bool,
}

impl Document {
    /// A document whose first byte (after blanks) is the next one `reader` gives.
    pub fn new() -> Self {
        Self {
            stage: Stage::Open,
            records: 0,
            newlines: 0,
            in_blocks: true,
        }
    }

    /// Whether the document is inside its `Records` array (a fault there is at its next record).
    pub fn in_records(&self) -> bool {
        matches!(self.stage, Stage::Records(_))
    }

    /// Reads up to the next record (appending its text, trimmed, to `text` when it is at most
    /// `limit` bytes) or the document's end. After an error the reader is somewhere in the middle.
    pub fn next(
        &mut self,
        reader: &mut dyn BufRead,
        text: &mut Vec<u8>,
        limit: usize,
    ) -> Result<Next, Stop> {
        loop {
            match self.stage {
                Stage::Open => {
                    self.expect(reader, b'{', "no opening brace")?;
                    let mut key = Vec::new();
                    self.skip_blanks(reader)?;
                    self.value(reader, Some(&mut key), 16)?;
                    if key != b"\"Records\"" {
                        return Err(Stop::Malformed("Records is not its first member"));
                    }
                    self.expect(reader, b':', "no colon after Records")?;
                    self.expect(reader, b'[', "Records is not an array")?;
                    self.stage = Stage::Records(true);
                }
                Stage::Records(first) => {
                    if self.skip_blanks(reader)? == Some(b']') {
                        reader.consume(1);
                        self.stage = Stage::Rest;
                        continue;
                    }
                    if !first {
                        self.expect(reader, b',', "no comma between records")?;
                        self.skip_blanks(reader)?;
                    }
                    self.stage = Stage::Records(false);
                    let start = text.len();
                    let length = self.value(reader, Some(text), limit)?;
                    self.records += 1;
                    if length > limit as u64 {
                        text.truncate(start);
                        return Ok(Next::TooLong(length));
                    }
                    return Ok(Next::Record);
                }
                Stage::Rest => match self.skip_blanks(reader)? {
                    Some(b'}') => {
                        reader.consume(1);
                        self.stage = Stage::Done;
                        return Ok(Next::End);
                    }
                    Some(b',') => {
                        // Another member after Records: passed over.
                        reader.consume(1);
                        self.skip_blanks(reader)?;
                        self.value(reader, None, 0)?;
                        self.expect(reader, b':', "no colon after a member's name")?;
                        self.skip_blanks(reader)?;
                        self.value(reader, None, 0)?;
                    }
                    _ => return Err(Stop::Malformed("no closing brace")),
                },
                Stage::Done => return Ok(Next::End),
            }
        }
    }

    /// Passes over blanks; the next byte, not consumed (`None` at the end of the input).
    fn skip_blanks(&mut self, reader: &mut dyn BufRead) -> Result<Option<u8>, Stop> {
        loop {
            let available = fill(reader)?;
            if available.is_empty() {
                return Ok(None);
            }
            let blanks = available
                .iter()
                .position(|byte| !byte.is_ascii_whitespace());
            let passed = blanks.unwrap_or(available.len());
            let next = blanks.map(|blanks| available[blanks]);
            self.newlines += count_newlines(&available[..passed]);
            reader.consume(passed);
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Passes over blanks and then `byte`, or fails with `why`.
    fn expect(
        &mut self,
        reader: &mut dyn BufRead,
        byte: u8,
        why: &'static str,
    ) -> Result<(), Stop> {
        match self.skip_blanks(reader)? {
            Some(found) if found == byte => {
                reader.consume(1);
                Ok(())
            }
            None => Err(Stop::Malformed("the document ends early")),
            Some(_) => Err(Stop::Malformed(why)),
        }
    }

    /// Reads one JSON value (an object, an array, a string or a scalar) that starts at the next
    /// byte, appending it to `out` while it is at most `limit` bytes long; its length.
    fn value(
        &mut self,
        reader: &mut dyn BufRead,
        mut out: Option<&mut Vec<u8>>,
        limit: usize,
    ) -> Result<u64, Stop> {
        let start = out.as_ref().map_or(0, |out| out.len());
        let mut length = 0_u64;
        let mut depth = 0_usize;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let available = fill(reader)?;
            if available.is_empty() {
                // A scalar may end with the input; anything else was cut short.
                return if length > 0 && depth == 0 && !in_string {
                    Ok(length)
                } else {
                    Err(Stop::Malformed("the document ends inside a record"))
                };
            }
            let mut index = 0;
            // Where the value ends in `available` (exclusive), once found.
            let mut end = None;
            while index < available.len() {
                // Inside a record, whole blocks at a time (the bytes are most of a document's).
                if depth > 0
                    && !escaped
                    && self.in_blocks
                    && let Some(step) = available
                        .get(index..)
                        .and_then(<[u8]>::first_chunk)
                        .and_then(|block| block_step(block, &mut depth, &mut in_string))
                {
                    self.newlines += step.newlines;
                    index += step.length;
                    if step.ends {
                        end = Some(index);
                        break;
                    }
                    continue;
                }
                if in_string {
                    if escaped {
                        escaped = false;
                        index += 1;
                        continue;
                    }
                    match memchr::memchr3(b'"', b'\\', b'\n', &available[index..]) {
                        None => index = available.len(),
                        Some(offset) => {
                            index += offset;
                            match available[index] {
                                b'"' => {
                                    in_string = false;
                                    if depth == 0 {
                                        end = Some(index + 1);
                                        break;
                                    }
                                }
                                b'\\' => escaped = true,
                                _ => self.newlines += 1,
                            }
                            index += 1;
                        }
                    }
                    continue;
                }
                let byte = available[index];
                match byte {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(index + 1);
                            break;
                        }
                    }
                    // A scalar ends before the byte that follows it.
                    b'}' | b']' | b',' | b':' if depth == 0 => {
                        end = Some(index);
                        break;
                    }
                    byte if byte.is_ascii_whitespace() => {
                        if byte == b'\n' {
                            self.newlines += 1;
                        }
                        if depth == 0 {
                            end = Some(index);
                            break;
                        }
                    }
                    _ => {}
                }
                index += 1;
            }
            let taken = end.unwrap_or(available.len());
            if end == Some(0) && length == 0 {
                return Err(Stop::Malformed("a value is missing"));
            }
            length += taken as u64;
            if let Some(out) = out.as_deref_mut() {
                if length <= limit as u64 {
                    out.extend_from_slice(&available[..taken]);
                } else {
                    out.truncate(start);
                }
            }
            reader.consume(taken);
            if end.is_some() {
                return Ok(length);
            }
        }
    }
}

/// The bytes a block of a record is read in at once.
const BLOCK: usize = 64;

/// What [`block_step`] read.
struct BlockStep {
    /// Bytes read: the whole block, or up to the end of the value.
    length: usize,
    /// Line breaks among them.
    newlines: u64,
    /// Whether the value ended there.
    ends: bool,
}

/// Reads `block` of a value open `depth` containers deep (inside a string or not) as the byte loop
/// of [`Document::value`] does, from bitmaps of its quotes and brackets: a string's quotes pair up
/// by the parity of the quotes before them, and the value can only end in the block if it has as
/// many closing brackets outside strings as there are open containers. `None` for a block with a
/// backslash (an escape may hide a quote), which is read byte by byte.
fn block_step(block: &[u8; BLOCK], depth: &mut usize, in_string: &mut bool) -> Option<BlockStep> {
    let marks = Marks::of(block);
    if marks.backslashes != 0 {
        return None;
    }
    // Bit `i`: byte `i` is inside a string (an opening quote counts as inside, a closing one not).
    let carried = if *in_string { u64::MAX } else { 0 };
    let inside = prefix_xor(marks.quotes) ^ carried;
    let (opens, closes) = (marks.opens & !inside, marks.closes & !inside);
    let whole = BlockStep {
        length: BLOCK,
        newlines: u64::from(marks.newlines.count_ones()),
        ends: false,
    };
    let closings = closes.count_ones() as usize;
    if closings < *depth {
        *depth = *depth - closings + opens.count_ones() as usize;
        *in_string = inside >> (BLOCK - 1) == 1;
        return Some(whole);
    }
    let mut brackets = opens | closes;
    while brackets != 0 {
        let at = brackets.trailing_zeros() as usize;
        let bit = 1_u64 << at;
        if opens & bit != 0 {
            *depth += 1;
        } else {
            *depth -= 1;
            if *depth == 0 {
                // A closing bracket is outside strings.
                *in_string = false;
                let through = u64::MAX >> (BLOCK - 1 - at);
                return Some(BlockStep {
                    length: at + 1,
                    newlines: u64::from((marks.newlines & through).count_ones()),
                    ends: true,
                });
            }
        }
        brackets &= brackets - 1;
    }
    *in_string = inside >> (BLOCK - 1) == 1;
    Some(whole)
}

/// Where a block's bytes that matter to a value's extent are, one bit a byte (bit `i`, byte `i`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Marks {
    quotes: u64,
    backslashes: u64,
    newlines: u64,
    /// `{` and `[`.
    opens: u64,
    /// `}` and `]`.
    closes: u64,
}

impl Marks {
    #[cfg(target_arch = "x86_64")]
    fn of(block: &[u8; BLOCK]) -> Self {
        // SAFETY: SSE2 is part of the x86-64 baseline, so the CPU running this has it.
        #[allow(unsafe_code)]
        unsafe {
            marks_sse2(block)
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn of(block: &[u8; BLOCK]) -> Self {
        Self::byte_by_byte(block)
    }

    /// [`Marks::of`] without vectors: elsewhere than on x86-64, and what the vectors are tested
    /// against.
    #[cfg(any(test, not(target_arch = "x86_64")))]
    fn byte_by_byte(block: &[u8; BLOCK]) -> Self {
        let mut marks = Self::default();
        for (at, &byte) in block.iter().enumerate() {
            let bit = |hit: bool| u64::from(hit) << at;
            marks.quotes |= bit(byte == b'"');
            marks.backslashes |= bit(byte == b'\\');
            marks.newlines |= bit(byte == b'\n');
            marks.opens |= bit(byte == b'{' || byte == b'[');
            marks.closes |= bit(byte == b'}' || byte == b']');
        }
        marks
    }
}

/// [`Marks::of`] sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn marks_sse2(block: &[u8; BLOCK]) -> Marks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x, _mm_set1_epi8,
    };
    let splat = |byte: u8| _mm_set1_epi8(byte as i8);
    // `{` and `[` (and `}` and `]`) differ only in the bit 0x20: with it set, one compare each.
    let (quote, backslash, newline, case, open, close) = (
        splat(b'"'),
        splat(b'\\'),
        splat(b'\n'),
        splat(0x20),
        splat(b'{'),
        splat(b'}'),
    );
    let bits = |lanes: __m128i, quarter: usize| {
        u64::from(_mm_movemask_epi8(lanes) as u16) << (16 * quarter)
    };
    let mut marks = Marks::default();
    let (quarters, _) = block.as_chunks::<16>();
    for (quarter, bytes) in quarters.iter().enumerate() {
        let (low, high) = bytes.split_at(8);
        let word = |half: &[u8]| half.try_into().map_or(0, i64::from_le_bytes);
        let here = _mm_set_epi64x(word(high), word(low));
        let folded = _mm_or_si128(here, case);
        marks.quotes |= bits(_mm_cmpeq_epi8(here, quote), quarter);
        marks.backslashes |= bits(_mm_cmpeq_epi8(here, backslash), quarter);
        marks.newlines |= bits(_mm_cmpeq_epi8(here, newline), quarter);
        marks.opens |= bits(_mm_cmpeq_epi8(folded, open), quarter);
        marks.closes |= bits(_mm_cmpeq_epi8(folded, close), quarter);
    }
    marks
}

/// Bit `i` of the result: whether bits `0..=i` of `bits` hold an odd number of ones.
fn prefix_xor(mut bits: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        bits ^= bits << shift;
    }
    bits
}

/// The reader's buffer, filled (empty at the end of the input); interrupted reads are retried.
fn fill(reader: &mut dyn BufRead) -> io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // Re-borrowed to return it: the loop above cannot hand out the first borrow.
            Err(error) => return Err(error),
            Ok(_) => break,
        }
    }
    reader.fill_buf()
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record's text, then how the document ended.
    fn read(document: &str, limit: usize) -> (Vec<String>, Result<u64, String>) {
        read_with(&mut document.as_bytes(), limit, true)
    }

    /// [`read`] from `reader`, records a block at a time where they can be (`in_blocks`) or byte
    /// by byte.
    fn read_with(
        reader: &mut dyn BufRead,
        limit: usize,
        in_blocks: bool,
    ) -> (Vec<String>, Result<u64, String>) {
        let mut parsed = Document::new();
        parsed.in_blocks = in_blocks;
        let mut records = Vec::new();
        loop {
            let mut text = Vec::new();
            match parsed.next(reader, &mut text, limit) {
                Ok(Next::Record) => records.push(String::from_utf8_lossy(&text).into_owned()),
                Ok(Next::TooLong(length)) => records.push(format!("too long: {length}")),
                Ok(Next::End) => return (records, Ok(parsed.newlines)),
                Err(Stop::Malformed(why)) => return (records, Err(why.to_owned())),
                Err(Stop::Read(error)) => return (records, Err(error.to_string())),
            }
        }
    }

    /// Real records in documents compact and pretty-printed, with quotes, escapes, brackets and
    /// line breaks put in at random, read through buffers of many sizes (so that blocks start and
    /// end anywhere, and a record spans several fills) and under several limits: in blocks, every
    /// record, error and line count is what reading byte by byte gives.
    #[test]
    fn blocks_read_as_byte_by_byte() {
        use std::io::{BufReader, Read};
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/cloudtrail/mixed_all.ndjson.gz"
        );
        let mut corpus = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).expect("fixture"))
            .read_to_string(&mut corpus)
            .expect("gzip fixture");
        let lines: Vec<&str> = corpus.lines().filter(|line| !line.is_empty()).collect();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut below = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let pieces = [
            "\"", "\\", "\\\"", "{", "}", "[", "]", "\n", ",", " ", "\\\\", "é",
        ];
        let (mut blocks_used, mut faults) = (0, 0);
        for round in 0..400 {
            let mut document = String::from(if round % 2 == 0 {
                "{\"Records\": ["
            } else {
                "{\n  \"Records\" : [\n"
            });
            for index in 0..1 + below(6) {
                if index > 0 {
                    document.push_str(if round % 3 == 0 { ",\n" } else { "," });
                }
                let line = lines[below(lines.len())];
                let record = if round % 4 == 1 {
                    let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
                    serde_json::to_string_pretty(&value).expect("pretty")
                } else {
                    line.to_owned()
                };
                document.push_str(&record);
            }
            document.push_str("]}");
            if round % 5 != 0 {
                for _ in 0..1 + below(3) {
                    let at = below(document.len());
                    if document.is_char_boundary(at) {
                        document.insert_str(at, pieces[below(pieces.len())]);
                    }
                }
            }
            for capacity in [1, 63, 64, 65, 100, 640, 4096, 1 << 16] {
                for limit in [200, 2000, 1 << 20] {
                    let bytes = document.as_bytes();
                    let in_blocks =
                        read_with(&mut BufReader::with_capacity(capacity, bytes), limit, true);
                    let by_byte =
                        read_with(&mut BufReader::with_capacity(capacity, bytes), limit, false);
                    assert_eq!(
                        in_blocks, by_byte,
                        "capacity {capacity}, limit {limit}: {document}"
                    );
                    blocks_used += usize::from(capacity >= BLOCK);
                    faults += usize::from(in_blocks.1.is_err());
                }
            }
        }
        // Both kinds of documents were read, through buffers where blocks fit.
        assert!(
            blocks_used > 1000 && faults > 1000,
            "{blocks_used} {faults}"
        );
    }

    /// Every byte value in every place of a block: the vectors mark what a byte at a time marks.
    #[test]
    fn marks_are_the_bytes_they_name() {
        for byte in 0..=u8::MAX {
            for at in 0..BLOCK {
                let mut block = [b'a'; BLOCK];
                block[at] = byte;
                block[(at * 7 + 3) % BLOCK] = b'"';
                assert_eq!(
                    Marks::of(&block),
                    Marks::byte_by_byte(&block),
                    "{byte} at {at}"
                );
            }
        }
        let mut block = [b'x'; BLOCK];
        let start = b"{\"a\":[1,\"\\\"\"]}\n} ]  [{";
        block[..start.len()].copy_from_slice(start);
        let marks = Marks::of(&block);
        assert_eq!(marks.opens, 1 | 1 << 5 | 1 << 20 | 1 << 21);
        assert_eq!(marks.closes, 1 << 12 | 1 << 13 | 1 << 15 | 1 << 17);
        assert_eq!(marks.quotes, 1 << 1 | 1 << 3 | 1 << 8 | 1 << 10 | 1 << 11);
        assert_eq!((marks.backslashes, marks.newlines), (1 << 9, 1 << 14));
    }

    #[test]
    fn records_come_out_whole_whatever_their_strings_hold() {
        let (records, end) = read(
            "{\n \"Records\" :\n [ {\"a\":\"]},\\\"{[\"}\n , [1, {\"b\": []}],\"s\\\\\" ,\n 12 , null ] ,\n \"x\": {\"y\": [1]} }",
            1 << 20,
        );
        assert_eq!(
            records,
            [
                "{\"a\":\"]},\\\"{[\"}",
                "[1, {\"b\": []}]",
                "\"s\\\\\"",
                "12",
                "null"
            ]
        );
        assert_eq!(end, Ok(5));
    }

    #[test]
    fn empty_and_compact_documents() {
        assert_eq!(read("{\"Records\":[]}", 10), (vec![], Ok(0)));
        let (records, end) = read("{\"Records\":[{},{}]}", 10);
        assert_eq!(records, ["{}", "{}"]);
        assert_eq!(end, Ok(0));
    }

    #[test]
    fn a_record_over_the_limit_is_passed_over_and_the_next_one_read() {
        let (records, end) = read("{\"Records\":[{\"a\":\"0123456789\"},{\"b\":1}]}", 10);
        assert_eq!(records, ["too long: 18", "{\"b\":1}"]);
        assert_eq!(end, Ok(0));
    }

    #[test]
    fn structural_faults_stop_the_document_after_the_records_before_them() {
        let cases = [
            ("{\"Records\": 5}", "Records is not an array"),
            ("{\"Other\": []}", "Records is not its first member"),
            ("{\"Records\": [{}, ]}", "a value is missing"),
            ("{\"Records\": [{} {}]}", "no comma between records"),
            (
                "{\"Records\": [{}, {\"a\": [1",
                "the document ends inside a record",
            ),
            ("{\"Records\": [{}", "the document ends early"),
            ("{\"Records\": [{}] ]", "no closing brace"),
        ];
        for (document, why) in cases {
            let (_, end) = read(document, 100);
            let end = end.expect_err(document);
            assert_eq!(end, why, "{document}");
        }
        let (records, _) = read("{\"Records\": [{\"a\":1}, {\"b\":2} {}]}", 100);
        assert_eq!(records, ["{\"a\":1}", "{\"b\":2}"]);
    }
}
