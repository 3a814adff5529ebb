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
}

impl Document {
    /// A document whose first byte (after blanks) is the next one `reader` gives.
    pub fn new() -> Self {
        Self {
            stage: Stage::Open,
            records: 0,
            newlines: 0,
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
        let mut reader = document.as_bytes();
        let mut parsed = Document::new();
        let mut records = Vec::new();
        loop {
            let mut text = Vec::new();
            match parsed.next(&mut reader, &mut text, limit) {
                Ok(Next::Record) => records.push(String::from_utf8_lossy(&text).into_owned()),
                Ok(Next::TooLong(length)) => records.push(format!("too long: {length}")),
                Ok(Next::End) => return (records, Ok(parsed.newlines)),
                Err(Stop::Malformed(why)) => return (records, Err(why.to_owned())),
                Err(Stop::Read(error)) => return (records, Err(error.to_string())),
            }
        }
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
