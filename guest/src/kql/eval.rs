//! A parsed query compiled for evaluation over JSON documents, with keyword semantics.
//!
//! Compiling resolves what can be resolved once: each distinct field gets a slot (its values are
//! read from the document once per evaluation, whatever the number of clauses on it), wildcard
//! values become [`Pattern`]s, IP values become address blocks, range bounds numbers or times.
//! Field values are read by [`crate::fields`] (nested, dotted or mixed keys; `null`, `""` and `[]`
//! are absent; numbers and booleans are their JSON text).

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use serde_json::{Map, Value as Json};

use super::ip::{self, Block};
use super::parse::{Field, Query, RangeOp, Value};
use super::pattern::{self, Pattern, Token};
use crate::bytes;
use crate::fields::Fields;
use crate::sparse::{SparseFields, recycled};
use crate::time::{self, EpochMillis};

/// Suffix of the multi-fields that Elastic integrations index with a lowercase normalizer.
const CASELESS: &str = ".caseless";

/// Why a parsed query cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// A field name with `*` needs an index mapping to expand against.
    WildcardField(String),
    /// A value without a field searches every field of a mapping.
    BareValue(String),
    /// `field: null`, which Elasticsearch refuses.
    NullValue(String),
    /// A value on an IP field that is neither an address nor a CIDR block.
    InvalidIp {
        /// The field.
        field: String,
        /// The value.
        value: String,
    },
    /// A range bound relative to the wall clock (`now-1d`), which a stream cannot honour.
    DateMath {
        /// The field.
        field: String,
        /// The bound.
        value: String,
    },
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WildcardField(field) => {
                write!(f, "field name pattern {field:?} needs an index mapping")
            }
            Self::BareValue(value) => write!(f, "value {value:?} has no field"),
            Self::NullValue(field) => write!(f, "{field}: null is not a value"),
            Self::InvalidIp { field, value } => {
                write!(
                    f,
                    "{value:?} on IP field {field} is neither an address nor a CIDR block"
                )
            }
            Self::DateMath { field, value } => {
                write!(
                    f,
                    "range bound {value:?} on {field} is relative to the wall clock"
                )
            }
        }
    }
}

/// A compiled query.
#[derive(Debug, Clone)]
pub struct Compiled {
    root: Node,
    /// Its own fields and tests (empty for a query compiled against a shared table).
    table: FieldTable,
}

/// The fields queries read, by slot, and their distinct tests, by number: queries compiled against
/// one table ([`Compiled::new_in`]) read each field of a document once and evaluate each test once
/// (rules of a pack share most tests: the data set, the outcome, the provider).
#[derive(Clone, Default)]
pub struct FieldTable {
    names: Vec<String>,
    tests: Vec<(usize, Test)>,
    /// Each name's slot and each test's number, so that a pack of many rules compiles in linear
    /// time (looking each up in the lists made compiling all 221 published rules quadratic).
    slots_by_name: HashMap<String, usize>,
    /// A test's number by its hash (taken once; a map keyed by the tests themselves hashed every
    /// one again each time it grew, and kept a second copy of each) and its place among the
    /// tests of that hash, which are compared in full.
    test_numbers: HashMap<(u64, u32), usize>,
}

/// The lists alone: the indexes follow from them (and iterate in no fixed order).
impl fmt::Debug for FieldTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldTable")
            .field("names", &self.names)
            .field("tests", &self.tests)
            .finish_non_exhaustive()
    }
}

impl FieldTable {
    /// The field names, by slot.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn slot(&mut self, name: &str) -> usize {
        if let Some(&slot) = self.slots_by_name.get(name) {
            return slot;
        }
        self.names.push(name.to_owned());
        let slot = self.names.len() - 1;
        self.slots_by_name.insert(name.to_owned(), slot);
        slot
    }

    fn test(&mut self, slot: usize, test: Test) -> Node {
        let hash = self.test_numbers.hasher().hash_one((slot, &test));
        for place in 0.. {
            match self.test_numbers.entry((hash, place)) {
                Entry::Occupied(known) => {
                    let id = *known.get();
                    if self
                        .tests
                        .get(id)
                        .is_some_and(|(at, known)| *at == slot && *known == test)
                    {
                        return Node::Test { id };
                    }
                }
                Entry::Vacant(new) => {
                    new.insert(self.tests.len());
                    break;
                }
            }
        }
        self.tests.push((slot, test));
        Node::Test {
            id: self.tests.len() - 1,
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    True,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// The test numbered `id` in the table (which holds its field's slot).
    Test {
        id: usize,
    },
    Nested {
        path: String,
        query: Box<Compiled>,
    },
}

/// Equal tests answer alike, and a table keeps one of them (by its hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Test {
    Exists,
    Equals(String),
    /// Compared after [`pattern::fold`]; holds the folded value.
    EqualsCaseless(String),
    Pattern(Pattern),
    Ip(Block),
    Range(Bound, RangeOp),
    /// Any of these (an `or`'s tests of one field).
    AnyOf(Vec<Test>),
}

#[derive(Debug, Clone)]
enum Bound {
    Number(f64),
    Time(EpochMillis),
    Text(String),
}

/// Numbers by their bits, so that equality is an equivalence with a hash: `-0` and `0` are then two
/// bounds, which compare alike.
impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.to_bits() == b.to_bits(),
            (Self::Time(a), Self::Time(b)) => a == b,
            (Self::Text(a), Self::Text(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Bound {}

impl Hash for Bound {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Self::Number(number) => number.to_bits().hash(state),
            Self::Time(time) => time.hash(state),
            Self::Text(text) => text.hash(state),
        }
    }
}

/// The last [`Document::generation`] before the stamps start again: a test's answer keeps the
/// generation above its two bits.
const MAX_GENERATION: u32 = u32::MAX >> 2;

/// A test's answer in [`Document::memo`]'s two low bits: false, true, or unknown (a value its source
/// cannot tell).
const ANSWER_BITS: u32 = 2;
const UNKNOWN: u32 = 2;

/// One document's field values, read once per field and shared by every query compiled against the
/// same field table ([`Compiled::new_in`]).
pub struct Document<'a, R = NoSlots> {
    source: Source<'a, R>,
    table: &'a FieldTable,
    /// The values read so far, in the order they were read.
    values: Vec<Values<'a>>,
    /// Per slot of the table: the document (by [`Document::generation`]) that last read it, and
    /// where in `values` its values are. Kept from one document to the next, so that a new one
    /// starts without visiting every slot: a slot stamped by another document is unread.
    stamps: Vec<(u32, u32)>,
    generation: u32,
    /// Set when a query's answer depended on a field its source cannot tell: that evaluation
    /// means nothing. (A query whose answer does not, such as an `and` with a false part beside
    /// the unknown one, is decided.)
    undecided: bool,
    /// Per test of the table: its answer on the document (by [`Document::generation`]) that last
    /// evaluated it, as `generation << ANSWER_BITS | answer`; kept from one document to the next as
    /// `stamps`.
    memo: Vec<u32>,
    /// Answers of the costlier tests on recent values, kept from one document to the next.
    recent: Recent,
}

/// The space a [`Document`] read from fields takes, kept from one document to the next so that
/// evaluating one allocates nothing.
#[derive(Default)]
pub struct EvalScratch {
    values: Vec<Values<'static>>,
    stamps: Vec<(u32, u32)>,
    generation: u32,
    memo: Vec<u32>,
    recent: Recent,
    /// The address of the field table the answers are for (0: none): a test's number means
    /// another test in another table, so a document of another table starts without them.
    table: usize,
}

/// How many answers [`Recent`] keeps, at most (a power of two), and the longest value it keeps one
/// for: at most 96 KiB a document's space.
const RECENT_ANSWERS: usize = 256;
const RECENT_VALUE_BYTES: usize = 384;

/// Answers of the costlier tests (searches, addresses, caseless values, value lists holding one of
/// those) on the values they were last asked about, by test and value: the user agents, ARNs and
/// addresses of a log repeat, and finding an answer costs less than a search through the value.
/// One answer per place, placed by a hash of test and value: a value that lands on another's
/// place replaces it, so the space is bounded and a hostile stream only makes every value a miss.
#[derive(Default)]
struct Recent {
    /// [`RECENT_ANSWERS`] of them once one is kept.
    answers: Vec<RecentAnswer>,
}

/// A test's answer on a value.
struct RecentAnswer {
    test: usize,
    value: Vec<u8>,
    answer: bool,
}

impl Recent {
    /// Test `id` (`test`) on the one value `value`.
    fn answer(&mut self, id: usize, test: &Test, value: &str) -> bool {
        if value.len() > RECENT_VALUE_BYTES {
            return test.holds_on(value);
        }
        if self.answers.is_empty() {
            self.answers.resize_with(RECENT_ANSWERS, || RecentAnswer {
                test: usize::MAX,
                value: Vec::new(),
                answer: false,
            });
        }
        let place = recent_place(id, value.as_bytes());
        let Some(recent) = self.answers.get_mut(place) else {
            return test.holds_on(value);
        };
        if recent.test == id && bytes::equal(&recent.value, value.as_bytes()) {
            return recent.answer;
        }
        let answer = test.holds_on(value);
        recent.test = id;
        recent.answer = answer;
        recent.value.clear();
        recent.value.extend_from_slice(value.as_bytes());
        answer
    }
}

/// The place of test `id`'s answer on `value` in [`Recent`]: a multiplicative hash of the value's
/// length and of three of its 8-byte words (first, middle, last), not of every byte, since the
/// value is compared in full anyway (and no defence against chosen collisions is needed: they only
/// cost misses).
fn recent_place(id: usize, value: &[u8]) -> usize {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
    let word = |at: usize| {
        let mut word = [0_u8; 8];
        for (byte, &from) in word.iter_mut().zip(value.get(at..).unwrap_or_default()) {
            *byte = from;
        }
        u64::from_le_bytes(word)
    };
    let (first, middle, last) = match (value.first_chunk::<8>(), value.last_chunk::<8>()) {
        (Some(first), Some(last)) => (
            u64::from_le_bytes(*first),
            word(value.len() / 2 - 4),
            u64::from_le_bytes(*last),
        ),
        _ => (word(0), 0, 0),
    };
    let mut hash = (id as u64) << 32 | value.len() as u64;
    for word in [first, middle, last] {
        hash = (hash.rotate_left(23) ^ word).wrapping_mul(MULTIPLIER);
    }
    (hash >> 56) as usize % RECENT_ANSWERS
}

/// A field's values once read: most fields have one, kept without a vector.
#[derive(Clone)]
enum Values<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'a> Values<'a> {
    fn from_vec(mut values: Vec<Cow<'a, str>>) -> Self {
        match values.len() {
            1 => values.pop().map_or(Self::Many(Vec::new()), Self::One),
            _ => Self::Many(values),
        }
    }

    /// Borrowed values, without a vector for one.
    fn borrowed(values: impl Iterator<Item = &'a str>) -> Self {
        let mut values = values.map(Cow::Borrowed);
        match (values.next(), values.next()) {
            (None, _) => Self::Many(Vec::new()),
            (Some(one), None) => Self::One(one),
            (Some(first), Some(second)) => {
                Self::Many([first, second].into_iter().chain(values).collect())
            }
        }
    }

    fn as_slice(&self) -> &[Cow<'a, str>] {
        match self {
            Self::One(value) => std::slice::from_ref(value),
            Self::Many(values) => values,
        }
    }
}

/// Where a [`Document`] reads its field values.
enum Source<'a, R> {
    /// A JSON document (ECS).
    Json(&'a Json),
    /// The fields of a document read sparsely ([`crate::sparse`]), without the document, and the
    /// number of each slot's field among them: nested queries cannot be evaluated on it (they
    /// leave the document undecided).
    Sparse(&'a SparseFields<'a>, &'a [Option<u32>]),
    /// A reader by slot of the field table of fields with at most one value: the value
    /// (`Some(None)`: none), or `None` when it cannot tell. Nested queries cannot be evaluated on
    /// it (they leave the document undecided).
    Slots(&'a R),
}

/// Values by slot of a [`FieldTable`] for fields with at most one value ([`Document::from_slots`]):
/// the value (`Some(None)`: none), or `None` when the reader cannot tell. Any closure of that shape
/// is one. Evaluation is compiled for each reader and calls it directly: through a pointer, the
/// call cost every test of a raw record.
pub trait SlotReader<'a> {
    /// The value of the field of `slot`.
    fn read(&self, slot: usize) -> Option<Option<&'a str>>;
}

impl<'a, F: Fn(usize) -> Option<Option<&'a str>>> SlotReader<'a> for F {
    fn read(&self, slot: usize) -> Option<Option<&'a str>> {
        self(slot)
    }
}

/// The reader of the documents that are not read by slot (JSON, sparse).
pub enum NoSlots {}

impl<'a> SlotReader<'a> for NoSlots {
    fn read(&self, _: usize) -> Option<Option<&'a str>> {
        match *self {}
    }
}

impl<'a> Document<'a> {
    /// `document`, to be read for the fields and tests of `table`.
    pub fn new(document: &'a Json, table: &'a FieldTable) -> Self {
        Self {
            source: Source::Json(document),
            table,
            values: Vec::new(),
            stamps: vec![(0, 0); table.names.len()],
            generation: 1,
            undecided: false,
            memo: vec![0; table.tests.len()],
            recent: Recent::default(),
        }
    }

    /// The fields of a document read sparsely, to be read for the fields and tests of `table`,
    /// whose slot `n` is the field numbered `numbers[n]` in `document`'s reach (`None`: not
    /// there): evaluate, then ask [`Document::decided`] whether the answers hold (a nested query
    /// needs the document). `scratch` is the space of the last document's (see
    /// [`Document::into_scratch`]).
    pub fn from_sparse(
        document: &'a SparseFields<'a>,
        numbers: &'a [Option<u32>],
        table: &'a FieldTable,
        scratch: EvalScratch,
    ) -> Self {
        Self::in_scratch(Source::Sparse(document, numbers), table, scratch)
    }
}

impl<'a, R: SlotReader<'a>> Document<'a, R> {
    /// A document whose values come from `read` (by slot of `table`), which may not always tell:
    /// evaluate, then ask [`Document::decided`] whether the answers hold. Its values are read
    /// again rather than kept (reading one costs no more than finding it kept would); `scratch`
    /// is as for [`Document::from_sparse`].
    pub fn from_slots(read: &'a R, table: &'a FieldTable, scratch: EvalScratch) -> Self {
        Self::in_scratch(Source::Slots(read), table, scratch)
    }

    /// A document from `source` in `scratch`'s space.
    fn in_scratch(source: Source<'a, R>, table: &'a FieldTable, scratch: EvalScratch) -> Self {
        let EvalScratch {
            values,
            mut stamps,
            generation,
            mut memo,
            mut recent,
            table: answered,
        } = scratch;
        let same_table = answered == std::ptr::from_ref(table).addr();
        if !same_table {
            recent.answers.clear();
        }
        let generation = match generation.checked_add(1) {
            Some(next)
                if same_table
                    && next <= MAX_GENERATION
                    && stamps.len() == table.names.len()
                    && memo.len() == table.tests.len() =>
            {
                next
            }
            // A new table, or every generation used: no stamp may look like this document's.
            _ => {
                stamps.clear();
                stamps.resize(table.names.len(), (0, 0));
                memo.clear();
                memo.resize(table.tests.len(), 0);
                1
            }
        };
        Self {
            source,
            table,
            // Emptied, the space holds values of any lifetime.
            values: recycled(values),
            stamps,
            generation,
            undecided: false,
            memo,
            recent,
        }
    }

    /// The space this document's values and answers took, for the next one.
    pub fn into_scratch(self) -> EvalScratch {
        EvalScratch {
            values: recycled(self.values),
            stamps: self.stamps,
            generation: self.generation,
            memo: self.memo,
            recent: self.recent,
            table: std::ptr::from_ref(self.table).addr(),
        }
    }

    /// Whether every value read so far was known, so that every evaluation on this document is
    /// what the JSON document would have given.
    pub fn decided(&self) -> bool {
        !self.undecided
    }

    /// The values of the field of `slot`; `None` when the source cannot tell them.
    fn values(&mut self, slot: usize) -> Option<&[Cow<'a, str>]> {
        let Some(stamp) = self.stamps.get_mut(slot) else {
            return Some(&[]);
        };
        let read = match self.source {
            // Read one value at a time by `Compiled::test`, never kept.
            Source::Slots(_) => return None,
            _ if stamp.0 == self.generation => None,
            Source::Json(document) => Some(Values::from_vec(
                document.values_of(self.table.names.get(slot).map_or("", String::as_str)),
            )),
            // By the field's number: no lookup by name, and no vector for one value.
            Source::Sparse(document, numbers) => Some(match numbers.get(slot).copied().flatten() {
                Some(number) => Values::borrowed(document.of(number)),
                None => Values::Many(Vec::new()),
            }),
        };
        if let Some(read) = read {
            *stamp = (
                self.generation,
                u32::try_from(self.values.len()).unwrap_or(u32::MAX),
            );
            self.values.push(read);
        }
        let at = stamp.1 as usize;
        Some(self.values.get(at).map_or(&[], Values::as_slice))
    }
}

impl Compiled {
    /// Compiles a parsed query with a field table of its own.
    pub fn new(query: &Query) -> Result<Self, CompileError> {
        let mut table = FieldTable::default();
        let root = compile(query, &mut table)?;
        Ok(Self { root, table })
    }

    /// Compiles a parsed query against a shared table (`table` gains its new fields and tests),
    /// for [`Compiled::matches_in`].
    pub fn new_in(query: &Query, table: &mut FieldTable) -> Result<Self, CompileError> {
        let root = compile(query, table)?;
        Ok(Self {
            root,
            table: FieldTable::default(),
        })
    }

    /// Whether `document` matches (a query from [`Compiled::new`]).
    pub fn matches(&self, document: &Json) -> bool {
        let mut document = Document::new(document, &self.table);
        self.matches_in(&mut document)
    }

    /// Whether the document matches (a query compiled with [`Compiled::new_in`] against the field
    /// table `document` was made for). When the answer depends on a value the document's source
    /// cannot tell, it is `false` and the document is no longer [`Document::decided`].
    pub fn matches_in<'a, R: SlotReader<'a>>(&self, document: &mut Document<'a, R>) -> bool {
        self.answer(&self.root, document).unwrap_or_else(|| {
            document.undecided = true;
            false
        })
    }

    /// The distinct fields the query reads (base names for `.caseless`), nested ones with their
    /// full path (empty for a query compiled against a shared table).
    pub fn fields(&self) -> Vec<String> {
        let mut out = self.table.names.clone();
        collect_nested_fields(&self.root, "", &mut out);
        out
    }

    /// The answer of an `and` (`decisive`: false) or an `or` (true) of `parts`: `decisive` as soon
    /// as a part answers it, whatever the unknown parts; else unknown if a part is.
    fn decided_by<'a, R: SlotReader<'a>>(
        &self,
        decisive: bool,
        parts: &[Node],
        document: &mut Document<'a, R>,
    ) -> Option<bool> {
        let mut known = true;
        for part in parts {
            // Tests, nearly every part of a rule's `and`, answered here rather than in a call.
            let answer = match part {
                Node::Test { id } => Self::test(*id, document),
                Node::Not(inner) => match &**inner {
                    Node::Test { id } => Self::test(*id, document).map(|holds| !holds),
                    _ => self.answer(part, document),
                },
                _ => self.answer(part, document),
            };
            match answer {
                Some(answer) if answer == decisive => return Some(decisive),
                Some(_) => {}
                None => known = false,
            }
        }
        known.then_some(!decisive)
    }

    /// The node's answer on the document, `None` when it depends on a value the source cannot
    /// tell: three-valued, as Kleene's logic, so that an `and` with a false part is false and an
    /// `or` with a true part true whatever the unknown parts would be, since every document with
    /// the values the source tells gives that answer.
    fn answer<'a, R: SlotReader<'a>>(
        &self,
        node: &Node,
        document: &mut Document<'a, R>,
    ) -> Option<bool> {
        match node {
            Node::True => Some(true),
            Node::And(parts) => self.decided_by(false, parts, document),
            Node::Or(parts) => self.decided_by(true, parts, document),
            Node::Not(part) => self.answer(part, document).map(|holds| !holds),
            Node::Test { id } => Self::test(*id, document),
            Node::Nested { path, query } => match document.source {
                Source::Json(json) => Some(
                    nested_objects(json, path)
                        .iter()
                        .any(|object| query.matches(object)),
                ),
                Source::Sparse(..) | Source::Slots(_) => None,
            },
        }
    }

    /// Test `id`'s answer on the document: kept from its first reading, since rules share tests.
    #[inline(always)]
    fn test<'a, R: SlotReader<'a>>(id: usize, document: &mut Document<'a, R>) -> Option<bool> {
        match document.memo.get(id) {
            Some(memo) if memo >> ANSWER_BITS == document.generation => match memo & UNKNOWN {
                UNKNOWN => None,
                _ => Some(memo & 1 == 1),
            },
            _ => {
                let Some((slot, test)) = document.table.tests.get(id) else {
                    return Some(false);
                };
                let answer = match document.source {
                    // A raw record's field has at most one value: tested as it is read, without
                    // keeping it.
                    Source::Slots(read) => read.read(*slot).map(|value| match value {
                        Some(value) if test.is_costly() => document.recent.answer(id, test, value),
                        Some(value) => test.holds_on(value),
                        None => test.holds(&[]),
                    }),
                    _ => document.values(*slot).map(|values| test.holds(values)),
                };
                if let Some(memo) = document.memo.get_mut(id) {
                    let bits = answer.map_or(UNKNOWN, u32::from);
                    *memo = document.generation << ANSWER_BITS | bits;
                }
                answer
            }
        }
    }
}

fn collect_nested_fields(node: &Node, prefix: &str, out: &mut Vec<String>) {
    match node {
        Node::And(parts) | Node::Or(parts) => {
            for part in parts {
                collect_nested_fields(part, prefix, out);
            }
        }
        Node::Not(part) => collect_nested_fields(part, prefix, out),
        Node::Nested { path, query } => {
            let full = format!("{prefix}{path}.");
            for field in &query.table.names {
                let name = format!("{full}{field}");
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            collect_nested_fields(&query.root, &full, out);
        }
        Node::True | Node::Test { .. } => {}
    }
}

/// The objects at `path` (arrays flattened), in any key spelling; keys that spell fields beneath the
/// path from a parent object (`{"a.b.c": 1, "a.b.d": 2}` for path `a.b`) make one object, as
/// Elasticsearch expands dotted keys.
fn nested_objects(document: &Json, path: &str) -> Vec<Json> {
    let mut out = Vec::new();
    collect_objects(document, path, &mut out);
    out
}

fn collect_objects(value: &Json, path: &str, out: &mut Vec<Json>) {
    match value {
        Json::Array(items) => {
            for item in items {
                collect_objects(item, path, out);
            }
        }
        Json::Object(map) => {
            if let Some(found) = map.get(path) {
                push_objects(found, out);
            }
            for (split, _) in path.match_indices('.') {
                if let Some(child) = map.get(&path[..split]) {
                    collect_objects(child, &path[split + 1..], out);
                }
            }
            let prefix = format!("{path}.");
            let beneath: Map<String, Json> = map
                .iter()
                .filter_map(|(key, child)| {
                    key.strip_prefix(&prefix)
                        .map(|rest| (rest.to_owned(), child.clone()))
                })
                .collect();
            if !beneath.is_empty() {
                out.push(Json::Object(beneath));
            }
        }
        _ => {}
    }
}

fn push_objects(value: &Json, out: &mut Vec<Json>) {
    match value {
        Json::Object(_) => out.push(value.clone()),
        Json::Array(items) => {
            for item in items {
                push_objects(item, out);
            }
        }
        _ => {}
    }
}

impl Test {
    /// Whether an answer costs more than finding it in [`Recent`]: a search through the value (a
    /// pattern that is not an equality, a prefix or a suffix), an address to parse, a value to fold.
    fn is_costly(&self) -> bool {
        match self {
            Test::Pattern(pattern) => pattern.searches(),
            Test::EqualsCaseless(_) | Test::Ip(_) => true,
            Test::AnyOf(tests) => tests.iter().any(Test::is_costly),
            Test::Exists | Test::Equals(_) | Test::Range(..) => false,
        }
    }

    /// Whether some value of the field's `values` passes.
    fn holds(&self, values: &[Cow<'_, str>]) -> bool {
        match self {
            Test::Exists => !values.is_empty(),
            _ => values.iter().any(|value| self.holds_on(value)),
        }
    }

    /// Whether `value` passes (a field's values: any one that does).
    fn holds_on(&self, value: &str) -> bool {
        match self {
            Test::Exists => true,
            Test::Equals(wanted) => bytes::equal(value.as_bytes(), wanted.as_bytes()),
            Test::EqualsCaseless(wanted) => pattern::fold(value) == *wanted,
            Test::Pattern(pattern) => pattern.matches(value),
            Test::Ip(block) => ip::parse(value).is_some_and(|address| block.contains(address)),
            Test::Range(bound, op) => in_range(bound, *op, value),
            Test::AnyOf(tests) => tests.iter().any(|test| test.holds_on(value)),
        }
    }
}

fn in_range(bound: &Bound, op: RangeOp, value: &str) -> bool {
    let ordering = match bound {
        Bound::Number(limit) => match number(value) {
            Some(found) => found.partial_cmp(limit),
            None => None,
        },
        Bound::Time(limit) => time::parse_iso8601(value).map(|found| found.cmp(limit)),
        Bound::Text(limit) => Some(value.cmp(limit.as_str())),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        RangeOp::Lt => ordering.is_lt(),
        RangeOp::Lte => ordering.is_le(),
        RangeOp::Gt => ordering.is_gt(),
        RangeOp::Gte => ordering.is_ge(),
    }
}

/// A number as a numeric field accepts it (JSON number spelling, which a string may also hold).
fn number(text: &str) -> Option<f64> {
    let text = text.trim();
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if !plain {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Whether a field is an IP field: its last name part is `ip`.
pub fn is_ip_field(field: &str) -> bool {
    field.rsplit('.').next() == Some("ip")
}

fn compile(query: &Query, fields: &mut FieldTable) -> Result<Node, CompileError> {
    Ok(match query {
        Query::All => Node::True,
        Query::And(parts) => {
            let mut parts: Vec<Node> = parts
                .iter()
                .map(|part| compile(part, fields))
                .collect::<Result<_, _>>()?;
            // An `and`'s answer does not depend on the order of its parts (see
            // `Compiled::answer`), but its cost does: it stops at the first false one.
            parts.sort_by_key(|part| likely_true(part, fields));
            Node::And(parts)
        }
        Query::Or(parts) => compile_or(parts, fields)?,
        Query::Not(part) => Node::Not(Box::new(compile(part, fields)?)),
        Query::Nested { path, query } => {
            let path = plain_field(path)?;
            Node::Nested {
                path: path.to_owned(),
                query: Box::new(Compiled::new(query)?),
            }
        }
        Query::Is { field, value } => {
            let (slot, test) = leaf_test(field.as_ref(), value, fields)?;
            fields.test(slot, test)
        }
        Query::Range { field, op, value } => {
            let name = plain_field(field)?;
            let bound = if let Some(limit) = number(value) {
                Bound::Number(limit)
            } else if let Some(limit) = time::parse_iso8601(value) {
                Bound::Time(limit)
            } else if let Some(day) = day_start(value) {
                // Elasticsearch fills what a date leaves out with the day's end for `<=` and `>`.
                Bound::Time(match op {
                    RangeOp::Lte | RangeOp::Gt => day + 86_400_000 - 1,
                    RangeOp::Lt | RangeOp::Gte => day,
                })
            } else if value.trim_start().starts_with("now") {
                return Err(CompileError::DateMath {
                    field: name.to_owned(),
                    value: value.clone(),
                });
            } else {
                Bound::Text(value.clone())
            };
            let slot = fields.slot(name);
            fields.test(slot, Test::Range(bound, *op))
        }
    })
}

/// The test of `field: value` and the slot of the field it reads.
fn leaf_test(
    field: Option<&Field>,
    value: &Value,
    fields: &mut FieldTable,
) -> Result<(usize, Test), CompileError> {
    let Some(field) = field else {
        return Err(CompileError::BareValue(value_text(value)));
    };
    let name = plain_field(field)?;
    let (base, caseless) = match name.strip_suffix(CASELESS) {
        Some(base) => (base, true),
        None => (name, false),
    };
    let test = match value {
        Value::Null => return Err(CompileError::NullValue(name.to_owned())),
        _ if value.is_exists() => Test::Exists,
        Value::Literal { text, .. } if is_ip_field(base) => {
            Test::Ip(Block::parse(text).ok_or_else(|| CompileError::InvalidIp {
                field: name.to_owned(),
                value: text.clone(),
            })?)
        }
        Value::Literal { text, .. } if caseless => Test::EqualsCaseless(pattern::fold(text)),
        Value::Literal { text, .. } => Test::Equals(text.clone()),
        Value::Wildcard(parts) => Test::Pattern(kql_pattern(parts, caseless)),
    };
    Ok((fields.slot(base), test))
}

/// An `or`: its parts that test one field (`field: (a or b or c)`, a value list) become one
/// test of that field, which reads the field once, and whose answer a document's repeated
/// values recall ([`Recent`]).
fn compile_or(parts: &[Query], fields: &mut FieldTable) -> Result<Node, CompileError> {
    // An `or` within an `or` is one `or` (`a: (x or y) or a: z`).
    fn flatten<'q>(parts: &'q [Query], out: &mut Vec<&'q Query>) {
        for part in parts {
            match part {
                Query::Or(inner) => flatten(inner, out),
                _ => out.push(part),
            }
        }
    }
    /// A part of the `or`: a field's tests, gathered where its first one stands, or a node.
    enum Part {
        Tests(usize, Vec<Test>),
        Node(Node),
    }
    let mut flat = Vec::with_capacity(parts.len());
    flatten(parts, &mut flat);
    let mut gathered = Vec::with_capacity(flat.len());
    // Where each field's tests are among `gathered`, by slot: a wide `or` compiles in linear time.
    let mut tests_of: HashMap<usize, usize> = HashMap::new();
    for part in flat {
        let Query::Is { field, value } = part else {
            gathered.push(Part::Node(compile(part, fields)?));
            continue;
        };
        let (slot, test) = leaf_test(field.as_ref(), value, fields)?;
        match tests_of.entry(slot) {
            Entry::Occupied(at) => {
                if let Some(Part::Tests(_, tests)) = gathered.get_mut(*at.get()) {
                    tests.push(test);
                }
            }
            Entry::Vacant(at) => {
                at.insert(gathered.len());
                gathered.push(Part::Tests(slot, vec![test]));
            }
        }
    }
    let nodes: Vec<Node> = gathered
        .into_iter()
        .map(|part| match part {
            Part::Tests(slot, tests) => match <[Test; 1]>::try_from(tests) {
                Ok([test]) => fields.test(slot, test),
                Err(tests) => fields.test(slot, Test::AnyOf(tests)),
            },
            Part::Node(node) => node,
        })
        .collect();
    Ok(match <[Node; 1]>::try_from(nodes) {
        Ok([node]) => node,
        Err(nodes) => Node::Or(nodes),
    })
}

/// How likely a part of an `and` is to hold, as far as its form tells, from 0 (a required value,
/// which most events lack) up: an `or` (or an inner `and`), a required address or range (costlier
/// to test), a field that must exist, a negation (most events lack what it excludes), then a value
/// of the keys a rule pack dispatches on (which hold on every event the rule is dispatched for),
/// and nested queries last (the costliest).
fn likely_true(part: &Node, table: &FieldTable) -> u8 {
    match part {
        Node::Test { id } => match table.tests.get(*id) {
            Some((slot, test)) => {
                let name = table.names.get(*slot).map_or("", String::as_str);
                match test {
                    _ if super::pack::is_dispatch_key(name) => 5,
                    Test::Exists => 3,
                    Test::Ip(_) | Test::Range(..) => 2,
                    Test::Equals(_)
                    | Test::EqualsCaseless(_)
                    | Test::Pattern(_)
                    | Test::AnyOf(_) => 0,
                }
            }
            None => 0,
        },
        Node::Or(_) | Node::And(_) => 1,
        Node::Not(_) => 4,
        Node::True => 6,
        Node::Nested { .. } => 7,
    }
}

/// The start of a `YYYY-MM-DD` day (UTC).
fn day_start(value: &str) -> Option<EpochMillis> {
    let value = value.trim();
    if value.len() != 10 {
        return None;
    }
    time::parse_iso8601(&format!("{value}T00:00:00Z"))
}

fn plain_field(field: &Field) -> Result<&str, CompileError> {
    if field.wildcard {
        return Err(CompileError::WildcardField(field.name.clone()));
    }
    Ok(&field.name)
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Literal { text, .. } => text.clone(),
        Value::Wildcard(parts) => parts.join("*"),
        Value::Null => "null".to_owned(),
    }
}

/// The pattern of a KQL wildcard value: only the stars between the parts are wildcards.
pub fn kql_pattern(parts: &[String], case_insensitive: bool) -> Pattern {
    let mut tokens = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            tokens.push(Token::Any);
        }
        tokens.extend(part.chars().map(Token::Char));
    }
    Pattern::new(tokens, case_insensitive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kql::parse::parse;

    /// `query` compiled against a table of its own, as a pack compiles each rule.
    fn compiled_in_table(query: &str) -> (Compiled, FieldTable) {
        let mut table = FieldTable::default();
        let compiled =
            Compiled::new_in(&parse(query).expect("query"), &mut table).expect("compiles");
        (compiled, table)
    }

    /// A query's answer on a document whose source tells `known` (field, value or `None` for no
    /// value) and cannot tell any other field: `Some` when decided.
    fn answer(query: &str, known: &[(&'static str, Option<&'static str>)]) -> Option<bool> {
        let (compiled, table) = compiled_in_table(query);
        let read = |slot: usize| {
            let name = table.names().get(slot)?;
            known
                .iter()
                .find(|(field, _)| field == name)
                .map(|&(_, value)| value)
        };
        let mut document = Document::from_slots(&read, &table, EvalScratch::default());
        let matched = compiled.matches_in(&mut document);
        document.decided().then_some(matched)
    }

    /// An unknown value decides nothing by itself, but an `and` with a false part is false and an
    /// `or` with a true part true whatever it would be, in either order.
    #[test]
    fn answers_in_three_values() {
        let (a_is_x, b_is_y) = (("a", Some("x")), ("b", Some("y")));
        let b_is_z = ("b", Some("z"));
        assert_eq!(answer("a: x and b: y", &[a_is_x, b_is_y]), Some(true));
        assert_eq!(answer("a: x and b: y", &[b_is_y]), None);
        assert_eq!(answer("a: x and b: y", &[b_is_z]), Some(false));
        assert_eq!(answer("b: y and a: x", &[b_is_z]), Some(false));
        assert_eq!(answer("a: x or b: y", &[b_is_y]), Some(true));
        assert_eq!(answer("a: x or b: y", &[b_is_z]), None);
        assert_eq!(answer("not a: x", &[]), None);
        assert_eq!(answer("not (a: x and b: y)", &[b_is_z]), Some(true));
        assert_eq!(answer("a: * and not b: *", &[("b", None)]), None);
        assert_eq!(
            answer("a: * and not b: *", &[a_is_x, ("b", None)]),
            Some(true)
        );
        // The same unknown test read again by a later part stays unknown.
        assert_eq!(answer("(a: x or b: z) and (a: x or b: y)", &[b_is_y]), None);
    }

    /// An `and` reads its required values first, then fields that must exist, negations, and the
    /// keys a pack dispatches on last: an event lacking a required value is settled by reading
    /// that field alone, whatever order the query wrote its parts in.
    #[test]
    fn an_and_reads_what_most_events_lack_first() {
        let query = "data_stream.dataset: aws.cloudtrail and source.ip: * \
                     and not user.name: root and user_agent.original: *Cyberduck*";
        let (compiled, table) = compiled_in_table(query);
        let read_fields = std::cell::RefCell::new(Vec::new());
        let read = |slot: usize| {
            let name = table.names().get(slot)?;
            read_fields.borrow_mut().push(name.clone());
            Some(match name.as_str() {
                "user_agent.original" => Some("aws-cli/2.15"),
                "data_stream.dataset" => Some("aws.cloudtrail"),
                "source.ip" => Some("192.0.2.1"),
                _ => None,
            })
        };
        let mut document = Document::from_slots(&read, &table, EvalScratch::default());
        assert!(!compiled.matches_in(&mut document));
        assert!(document.decided());
        assert_eq!(*read_fields.borrow(), ["user_agent.original"]);
    }

    /// Queries compiled against one table share their equal tests, and a test on another field,
    /// or of another kind, is another test (what a pack of rules evaluates once per event).
    #[test]
    fn a_table_holds_each_distinct_test_once() {
        /// The numbers of the tests `query` compiles to in `table`, in order.
        fn numbers(table: &mut FieldTable, query: &str) -> Vec<usize> {
            fn collect(node: &Node, ids: &mut Vec<usize>) {
                match node {
                    Node::Test { id } => ids.push(*id),
                    Node::And(parts) | Node::Or(parts) => {
                        parts.iter().for_each(|part| collect(part, ids));
                    }
                    Node::Not(inner) => collect(inner, ids),
                    Node::True | Node::Nested { .. } => {}
                }
            }
            let compiled =
                Compiled::new_in(&parse(query).expect("query"), table).expect("compiles");
            let mut ids = Vec::new();
            collect(&compiled.root, &mut ids);
            ids.sort_unstable();
            ids
        }
        let mut table = FieldTable::default();
        let first = numbers(&mut table, "a: x and b: y");
        assert_eq!(first.len(), 2);
        assert_eq!(
            numbers(&mut table, "b: y and a: x"),
            first,
            "the same tests, the same numbers"
        );
        let other_field = numbers(&mut table, "c: x");
        let other_kind = numbers(&mut table, "a: x*");
        let list = numbers(&mut table, "a: (x or z)");
        let all: std::collections::BTreeSet<usize> = [&first, &other_field, &other_kind, &list]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        assert_eq!(
            all.len(),
            5,
            "{first:?} {other_field:?} {other_kind:?} {list:?}"
        );
        assert_eq!(table.tests.len(), 5);
        let mut both = vec![other_field[0], list[0]];
        both.sort_unstable();
        assert_eq!(numbers(&mut table, "a: (x or z) and c: x"), both);
        assert_eq!(table.tests.len(), 5, "no test added twice");
    }

    /// An `or`'s tests of one field (a value list, or the same field written twice, `.caseless`
    /// included) read the field once and answer as the tests one by one would.
    #[test]
    fn a_value_list_reads_its_field_once() {
        let query = "a: (x or *y* or Z* or q) or b: w or a.caseless: mIxEd or a: 192*";
        let (compiled, table) = compiled_in_table(query);
        let (Node::Or(parts), [_, _]) = (&compiled.root, table.names()) else {
            panic!("one or over two fields: {:?}", compiled.root);
        };
        assert_eq!(parts.len(), 2, "one test per field: {parts:?}");
        let holds = |value: &str| {
            ["x", "q"].contains(&value)
                || value.contains('y')
                || value.starts_with('Z')
                || value.to_lowercase() == "mixed"
                || value.starts_with("192")
        };
        for value in [
            "x", "q", "ayb", "Zed", "zed", "MIXED", "mixed", "192.0", "w", "",
        ] {
            let known = [("a", Some(value)), ("b", None)];
            let read = |slot: usize| {
                let name = table.names().get(slot)?;
                known
                    .iter()
                    .find(|(field, _)| field == name)
                    .map(|(_, v)| *v)
            };
            let mut document = Document::from_slots(&read, &table, EvalScratch::default());
            assert_eq!(
                compiled.matches_in(&mut document),
                holds(value),
                "{value:?}"
            );
        }
    }

    /// Space kept from a document of one table serves a document of another, whose tests have the
    /// same numbers and mean other things, without its answers.
    #[test]
    fn another_table_recalls_no_answer() {
        let (looks_for_x, x_table) = compiled_in_table("a: *x*");
        let (looks_for_y, y_table) = compiled_in_table("a: *y*");
        let read = |_: usize| Some(Some("x"));
        let mut document = Document::from_slots(&read, &x_table, EvalScratch::default());
        assert!(looks_for_x.matches_in(&mut document));
        let mut document = Document::from_slots(&read, &y_table, document.into_scratch());
        assert!(!looks_for_y.matches_in(&mut document));
        let mut document = Document::from_slots(&read, &x_table, document.into_scratch());
        assert!(looks_for_x.matches_in(&mut document));
    }

    /// Answers recalled for repeated values are the answers: over more values than [`Recent`]
    /// keeps (so that places are taken over), values longer than it keeps, and two tests whose
    /// values are the same, each answer is the test's own.
    #[test]
    fn recalled_answers_are_the_tests_answers() {
        let query = "a: *needle* or b: (*k9* or *x*)";
        let (compiled, table) = compiled_in_table(query);
        let mut values: Vec<String> = (0..RECENT_ANSWERS * 3)
            .map(|n| match n % 5 {
                0 => format!("agent {n} with a needle in it"),
                1 => format!("k{n}"),
                2 => "x".repeat(n),
                _ => format!("agent/{n}.{}", n * 7919),
            })
            .collect();
        values.push(format!("{}needle", "n".repeat(RECENT_VALUE_BYTES)));
        values.push("n".repeat(RECENT_VALUE_BYTES + 1));
        let mut scratch = EvalScratch::default();
        for round in 0..3 {
            for (index, value) in values.iter().enumerate() {
                // Field `a` or `b` alone holds the value, in turns by round.
                let field = if (index + round) % 2 == 0 { "a" } else { "b" };
                let read = |slot: usize| {
                    let name = table.names().get(slot)?;
                    Some((name == field).then_some(value.as_str()))
                };
                let mut document = Document::from_slots(&read, &table, scratch);
                let expected = match field {
                    "a" => value.contains("needle"),
                    _ => value.contains("k9") || value.contains('x'),
                };
                assert_eq!(
                    compiled.matches_in(&mut document),
                    expected,
                    "{field}: {value:?}"
                );
                scratch = document.into_scratch();
            }
        }
    }
}
