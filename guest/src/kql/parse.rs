//! KQL text to a syntax tree, as Kibana's grammar (`kbn-es-query`, `grammar.peggy`) parses it.
//!
//! A direct transcription of the PEG: ordered choices with backtracking, the same lookaheads, so
//! the same quirks. An unquoted value runs until a special character (`\():<>"*{}` unescaped) or a
//! keyword (a whitespace, `or`/`and`, a whitespace; or `not` and a whitespace, anywhere), and may
//! hold spaces; it is then trimmed as JavaScript trims. `not` binds tighter than `and`, `and` tighter
//! than `or`; `not not x` is a syntax error, as in Kibana. Only an unescaped `*` outside quotes is a
//! wildcard. Nesting (parentheses, value lists, `{}`) is bounded by [`MAX_DEPTH`] and the work by
//! the query's length, so no input can exhaust the stack or the time.

use std::fmt;

/// Deepest nesting of parentheses, value lists and nested queries.
pub const MAX_DEPTH: usize = 64;
/// Longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 256 * 1024;
/// Most parts of a field name (`a.b.c` has three): reading a field tries each dotted prefix of
/// it as a key, so a name of very many parts would cost every event time quadratic in its length.
/// Elasticsearch maps objects 20 deep by default; the published rules' names have at most 7 parts.
pub const MAX_FIELD_PARTS: usize = 64;

/// Why a field name is refused: more than [`MAX_FIELD_PARTS`] parts.
pub fn check_field_name(name: &str) -> Result<(), String> {
    match name.split('.').count() {
        parts if parts > MAX_FIELD_PARTS => Err(format!(
            "a field name of {parts} parts, more than {MAX_FIELD_PARTS}"
        )),
        _ => Ok(()),
    }
}

/// A KQL query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The empty query: every document.
    All,
    /// Every part holds.
    And(Vec<Query>),
    /// Some part holds.
    Or(Vec<Query>),
    /// The part does not hold.
    Not(Box<Query>),
    /// `field: value` (`field` is `None` for a bare value).
    Is {
        /// Field name as written (`None`: no field).
        field: Option<Field>,
        /// The value.
        value: Value,
    },
    /// `field >= value` and the other comparisons.
    Range {
        /// Field name.
        field: Field,
        /// Comparison.
        op: RangeOp,
        /// The bound as written (escapes resolved).
        value: String,
    },
    /// `path: { query }`: the query holds for one object at `path`.
    Nested {
        /// Path of the objects, relative to the enclosing nested query.
        path: Field,
        /// Query over each object's fields.
        query: Box<Query>,
    },
}

/// A field name; `wildcard` when written with an unescaped `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name (a `*` of a wildcard name stands for itself here).
    pub name: String,
    /// Whether the name has an unescaped `*`.
    pub wildcard: bool,
}

/// A value of `field: value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Exact text: quoted, or unquoted without `*`.
    Literal {
        /// The text.
        text: String,
        /// Whether it was quoted (`true`/`false`/`null` unquoted are Kibana's typed literals).
        quoted: bool,
    },
    /// Unquoted with `*`: the pieces between the stars, so `a*b` is `["a", "b"]`.
    Wildcard(Vec<String>),
    /// Unquoted `null`.
    Null,
}

impl Value {
    /// Whether it is a lone `*` (`field: *`, exists).
    pub fn is_exists(&self) -> bool {
        matches!(self, Value::Wildcard(parts) if parts.len() == 2 && parts.iter().all(String::is_empty))
    }
}

/// A range comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeOp {
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

/// Why a query does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub message: String,
    /// 1-based line within the query.
    pub line: u32,
    /// 1-based column (in characters) within the line.
    pub column: u32,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Parses a KQL query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    if text.len() > MAX_QUERY_BYTES {
        return Err(error_at(
            &chars,
            0,
            format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let mut parser = Parser {
        fuel: 64 * chars.len() as u64 + 10_000,
        chars,
        at: 0,
        depth: 0,
        furthest: 0,
        abort: None,
    };
    parser.spaces();
    let query = parser.or_query();
    parser.spaces();
    if let Some(message) = parser.abort.take() {
        return Err(error_at(&parser.chars, parser.furthest, message));
    }
    if parser.at == parser.chars.len() {
        if let Some(query) = query {
            return Ok(query);
        }
        if parser.chars.iter().all(|c| is_space(*c)) {
            return Ok(Query::All);
        }
    }
    let at = parser.furthest.max(parser.at);
    let message = match parser.chars.get(at) {
        Some(c) => format!("unexpected {c:?}"),
        None => "unexpected end of query".to_owned(),
    };
    Err(error_at(&parser.chars, at, message))
}

fn error_at(chars: &[char], at: usize, message: String) -> ParseError {
    let before = &chars[..at.min(chars.len())];
    let line = before.iter().filter(|c| **c == '\n').count() + 1;
    let column = before.iter().rev().take_while(|c| **c != '\n').count() + 1;
    ParseError {
        message,
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

/// The grammar's `Space`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{a0}')
}

/// What JavaScript's `String.prototype.trim` removes.
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

fn is_special(c: char) -> bool {
    matches!(
        c,
        '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}'
    )
}

/// A piece of an unquoted literal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Piece {
    Char(char),
    Star,
}

/// A literal: quoted text, or unquoted pieces.
enum Literal {
    Quoted(String),
    Unquoted(Vec<Piece>),
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    depth: usize,
    fuel: u64,
    /// The furthest position where something failed to match: where the error is.
    furthest: usize,
    /// Set when parsing must stop (too deep, too much work).
    abort: Option<String>,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn fail(&mut self) {
        self.furthest = self.furthest.max(self.at);
    }

    fn eat(&mut self, wanted: char) -> bool {
        if self.peek() == Some(wanted) {
            self.at += 1;
            true
        } else {
            self.fail();
            false
        }
    }

    /// Spends one unit of work; false (and abort) when none is left.
    fn burn(&mut self) -> bool {
        if self.abort.is_some() {
            return false;
        }
        if self.fuel == 0 {
            self.abort = Some("the query is too complex".to_owned());
            return false;
        }
        self.fuel -= 1;
        true
    }

    fn enter(&mut self) -> bool {
        if self.depth >= MAX_DEPTH {
            self.furthest = self.furthest.max(self.at);
            self.abort = Some(format!("nesting deeper than {MAX_DEPTH} levels"));
            return false;
        }
        self.depth += 1;
        true
    }

    fn spaces(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(is_space) {
            self.at += 1;
        }
        self.at - start
    }

    /// Whether the ASCII `word` is at `at`, in any case.
    fn word_at(&self, at: usize, word: &str) -> bool {
        self.chars.get(at..at + word.len()).is_some_and(|found| {
            found
                .iter()
                .zip(word.chars())
                .all(|(a, b)| a.eq_ignore_ascii_case(&b))
        })
    }

    /// Case-insensitive ASCII word at the cursor.
    fn word(&mut self, word: &str) -> bool {
        let end = self.at + word.len();
        let matches = self.word_at(self.at, word);
        if matches {
            self.at = end;
        } else {
            self.fail();
        }
        matches
    }

    /// `Space+ word Space+` (the grammar's `Or`, `And`).
    fn infix(&mut self, word: &str) -> bool {
        let start = self.at;
        if self.spaces() > 0 && self.word(word) && self.spaces() > 0 {
            return true;
        }
        self.at = start;
        false
    }

    /// `'not'i Space+`.
    fn not_keyword(&mut self) -> bool {
        let start = self.at;
        if self.word("not") && self.spaces() > 0 {
            return true;
        }
        self.at = start;
        false
    }

    /// The grammar's `Keyword` lookahead at the cursor.
    fn at_keyword(&self) -> bool {
        let word_at = |at: usize, word: &str| self.word_at(at, word);
        let space_at = |at: usize| self.chars.get(at).copied().is_some_and(is_space);
        (space_at(self.at) && word_at(self.at + 1, "or") && space_at(self.at + 3))
            || (space_at(self.at) && word_at(self.at + 1, "and") && space_at(self.at + 4))
            || (word_at(self.at, "not") && space_at(self.at + 3))
    }

    fn or_query(&mut self) -> Option<Query> {
        self.chain("or", Query::Or, Self::and_query)
    }

    /// `part (infix part)*`: one part as it is, several combined (the grammar's `OrQuery`,
    /// `AndQuery` and their value-list forms).
    fn chain(
        &mut self,
        infix: &str,
        combine: fn(Vec<Query>) -> Query,
        mut part: impl FnMut(&mut Self) -> Option<Query>,
    ) -> Option<Query> {
        let mut parts = vec![part(self)?];
        loop {
            let start = self.at;
            if self.infix(infix)
                && let Some(next) = part(self)
            {
                parts.push(next);
                continue;
            }
            self.at = start;
            break;
        }
        Some(if parts.len() == 1 {
            parts.pop()?
        } else {
            combine(parts)
        })
    }

    fn and_query(&mut self) -> Option<Query> {
        self.chain("and", Query::And, Self::not_query)
    }

    fn not_query(&mut self) -> Option<Query> {
        if !self.burn() {
            return None;
        }
        let start = self.at;
        if self.not_keyword() {
            if let Some(query) = self.sub_query() {
                return Some(Query::Not(Box::new(query)));
            }
            self.at = start;
        }
        self.sub_query()
    }

    fn sub_query(&mut self) -> Option<Query> {
        if let Some(query) = self.group('(', ')', Self::or_query) {
            return Some(query);
        }
        if self.abort.is_some() {
            return None;
        }
        self.nested_query()
    }

    /// `open Space* inner Space* close`, one nesting level deeper; the cursor is back where it was
    /// when it does not match.
    fn group(
        &mut self,
        open: char,
        close: char,
        inner: impl FnOnce(&mut Self) -> Option<Query>,
    ) -> Option<Query> {
        let start = self.at;
        if !self.eat(open) || !self.enter() {
            return None;
        }
        self.spaces();
        let query = inner(self);
        self.depth -= 1;
        if let Some(query) = query {
            self.spaces();
            if self.eat(close) {
                return Some(query);
            }
        }
        self.at = start;
        None
    }

    fn nested_query(&mut self) -> Option<Query> {
        let start = self.at;
        if let Some(path) = self.field() {
            self.spaces();
            if self.eat(':') {
                self.spaces();
                if let Some(query) = self.group('{', '}', Self::or_query) {
                    return Some(Query::Nested {
                        path,
                        query: Box::new(query),
                    });
                }
            }
        }
        self.at = start;
        if self.abort.is_some() {
            return None;
        }
        self.expression()
    }

    fn expression(&mut self) -> Option<Query> {
        let start = self.at;
        if let Some(query) = self.range_expression() {
            return Some(query);
        }
        self.at = start;
        if let Some(query) = self.field_value_expression() {
            return Some(query);
        }
        self.at = start;
        if self.abort.is_some() {
            return None;
        }
        // A bare value: no field.
        let value = self.value()?;
        Some(Query::Is { field: None, value })
    }

    fn range_expression(&mut self) -> Option<Query> {
        let field = self.field()?;
        self.spaces();
        let op = if self.eat('<') {
            if self.eat('=') {
                RangeOp::Lte
            } else {
                RangeOp::Lt
            }
        } else if self.eat('>') {
            if self.eat('=') {
                RangeOp::Gte
            } else {
                RangeOp::Gt
            }
        } else {
            return None;
        };
        self.spaces();
        let value = match self.literal()? {
            Literal::Quoted(text) => text,
            Literal::Unquoted(pieces) => pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Char(c) => *c,
                    Piece::Star => '*',
                })
                .collect(),
        };
        Some(Query::Range { field, op, value })
    }

    fn field_value_expression(&mut self) -> Option<Query> {
        let field = self.field()?;
        self.spaces();
        if !self.eat(':') {
            return None;
        }
        self.spaces();
        self.list_of_values(&field)
    }

    fn field(&mut self) -> Option<Field> {
        let field = self.field_as_written()?;
        if let Err(why) = check_field_name(&field.name) {
            self.abort = Some(why);
            return None;
        }
        Some(field)
    }

    fn field_as_written(&mut self) -> Option<Field> {
        Some(match self.literal()? {
            Literal::Quoted(name) => Field {
                name,
                wildcard: false,
            },
            Literal::Unquoted(pieces) => Field {
                wildcard: pieces.contains(&Piece::Star),
                name: pieces
                    .iter()
                    .map(|piece| match piece {
                        Piece::Char(c) => *c,
                        Piece::Star => '*',
                    })
                    .collect(),
            },
        })
    }

    fn list_of_values(&mut self, field: &Field) -> Option<Query> {
        if !self.burn() {
            return None;
        }
        if let Some(query) = self.group('(', ')', |parser| parser.or_list(field)) {
            return Some(query);
        }
        if self.abort.is_some() {
            return None;
        }
        let value = self.value()?;
        Some(Query::Is {
            field: Some(field.clone()),
            value,
        })
    }

    fn or_list(&mut self, field: &Field) -> Option<Query> {
        self.chain("or", Query::Or, |parser| parser.and_list(field))
    }

    fn and_list(&mut self, field: &Field) -> Option<Query> {
        self.chain("and", Query::And, |parser| parser.not_list(field))
    }

    fn not_list(&mut self, field: &Field) -> Option<Query> {
        let start = self.at;
        if self.not_keyword() {
            if let Some(query) = self.list_of_values(field) {
                return Some(Query::Not(Box::new(query)));
            }
            self.at = start;
        }
        self.list_of_values(field)
    }

    fn value(&mut self) -> Option<Value> {
        Some(match self.literal()? {
            Literal::Quoted(text) => Value::Literal { text, quoted: true },
            Literal::Unquoted(pieces) => {
                if pieces.contains(&Piece::Star) {
                    let mut parts = vec![String::new()];
                    for piece in pieces {
                        match piece {
                            Piece::Char(c) => parts.last_mut()?.push(c),
                            Piece::Star => parts.push(String::new()),
                        }
                    }
                    Value::Wildcard(parts)
                } else {
                    let text: String = pieces
                        .iter()
                        .filter_map(|piece| match piece {
                            Piece::Char(c) => Some(*c),
                            Piece::Star => None,
                        })
                        .collect();
                    if text == "null" {
                        Value::Null
                    } else {
                        Value::Literal {
                            text,
                            quoted: false,
                        }
                    }
                }
            }
        })
    }

    fn literal(&mut self) -> Option<Literal> {
        if !self.burn() {
            return None;
        }
        if self.peek() == Some('"') {
            return self.quoted().map(Literal::Quoted);
        }
        self.unquoted().map(Literal::Unquoted)
    }

    fn quoted(&mut self) -> Option<String> {
        let start = self.at;
        if !self.eat('"') {
            return None;
        }
        let mut text = String::new();
        loop {
            match self.peek() {
                None => {
                    self.fail();
                    self.at = start;
                    return None;
                }
                Some('"') => {
                    self.at += 1;
                    return Some(text);
                }
                Some('\\') => {
                    if let Some(c) = self.escaped_whitespace().or_else(|| self.escaped_unicode()) {
                        text.push(c);
                    } else if let Some(c @ ('\\' | '"')) = self.chars.get(self.at + 1).copied() {
                        self.at += 2;
                        text.push(c);
                    } else {
                        // A backslash before anything else is itself.
                        self.at += 1;
                        text.push('\\');
                    }
                }
                Some(c) => {
                    self.at += 1;
                    text.push(c);
                }
            }
        }
    }

    fn escaped_whitespace(&mut self) -> Option<char> {
        if self.peek() != Some('\\') {
            return None;
        }
        let c = match self.chars.get(self.at + 1)? {
            't' => '\t',
            'r' => '\r',
            'n' => '\n',
            _ => return None,
        };
        self.at += 2;
        Some(c)
    }

    /// `\uXXXX`: a UTF-16 unit; a surrogate pair spelled as two escapes is one character, a lone
    /// surrogate (which Rust text cannot hold) is U+FFFD.
    fn escaped_unicode(&mut self) -> Option<char> {
        let unit = |at: usize| -> Option<u32> {
            if self.chars.get(at) != Some(&'\\') || self.chars.get(at + 1) != Some(&'u') {
                return None;
            }
            let digits = self.chars.get(at + 2..at + 6)?;
            digits
                .iter()
                .try_fold(0_u32, |value, c| Some(value * 16 + c.to_digit(16)?))
        };
        let first = unit(self.at)?;
        if (0xD800..0xDC00).contains(&first)
            && let Some(second) = unit(self.at + 6)
            && (0xDC00..0xE000).contains(&second)
        {
            self.at += 12;
            return char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00));
        }
        self.at += 6;
        Some(char::from_u32(first).unwrap_or('\u{fffd}'))
    }

    fn unquoted(&mut self) -> Option<Vec<Piece>> {
        let mut pieces = Vec::new();
        loop {
            if !self.burn() {
                return None;
            }
            let Some(c) = self.peek() else {
                self.fail();
                break;
            };
            if c == '\\' {
                if let Some(c) = self.escaped_whitespace() {
                    pieces.push(Piece::Char(c));
                    continue;
                }
                if let Some(next) = self.chars.get(self.at + 1).copied()
                    && is_special(next)
                {
                    self.at += 2;
                    pieces.push(Piece::Char(next));
                    continue;
                }
                if let Some(c) = self.escaped_unicode() {
                    pieces.push(Piece::Char(c));
                    continue;
                }
                let keyword_start = self.at;
                self.at += 1;
                if let Some(word) = ["or", "and", "not"].into_iter().find(|word| {
                    self.chars
                        .get(self.at..self.at + word.len())
                        .is_some_and(|found| {
                            found
                                .iter()
                                .zip(word.chars())
                                .all(|(a, b)| a.eq_ignore_ascii_case(&b))
                        })
                }) {
                    // The keyword as written.
                    for c in &self.chars[self.at..self.at + word.len()] {
                        pieces.push(Piece::Char(*c));
                    }
                    self.at += word.len();
                    continue;
                }
                self.at = keyword_start;
                self.fail();
                break;
            }
            if c == '*' {
                self.at += 1;
                pieces.push(Piece::Star);
                continue;
            }
            if is_special(c) || self.at_keyword() {
                self.fail();
                break;
            }
            self.at += 1;
            pieces.push(Piece::Char(c));
        }
        if pieces.is_empty() {
            return None;
        }
        // JavaScript's trim, on the characters as unescaped.
        let is_trimmed = |piece: &Piece| matches!(piece, Piece::Char(c) if is_js_whitespace(*c));
        let end = pieces
            .iter()
            .rposition(|piece| !is_trimmed(piece))
            .map_or(0, |at| at + 1);
        let start = pieces
            .iter()
            .position(|piece| !is_trimmed(piece))
            .unwrap_or(end);
        Some(pieces[start..end].to_vec())
    }
}
