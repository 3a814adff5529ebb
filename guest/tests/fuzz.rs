//! Mutation fuzzing of the guest's two entry points that take outside bytes: `process` (events) and
//! `restore` (snapshots), for the built-in rule and for a pack of every rule file the tests can
//! reach. Stable Rust has no cargo-fuzz, so this is a small coverage-blind mutator seeded with real
//! CloudTrail records, ECS documents and valid snapshots. It checks that nothing panics (a panic is
//! a trap in the component) and that memory stays within a bound proportional to the input; a
//! pack's fast paths must also decide every input as its full path alone does.
//!
//! Each target runs for `NEWTERMS_FUZZ_SECONDS` (default 3) and prints its executions:
//! `NEWTERMS_FUZZ_SECONDS=300 cargo test --release -p newterms-guest --test fuzz -- --nocapture`.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use newterms_guest::{Config, Detector, Engine};

mod common;
use common::Rng;

/// Counts live heap bytes and their peak, to bound what one input may make the guest allocate.
/// Per thread: the targets run side by side on the test harness's threads, each bounding its own
/// inputs (a byte freed on another thread than the one that took it counts against the freer).
struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Adds `change` to this thread's live bytes, and raises its peak.
fn count(change: isize) {
    // `try_with`: nothing to count once the thread's locals are gone, at its exit.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + change;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

#[allow(unsafe_code)] // a global allocator is an unsafe trait; this one only counts and delegates
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the layout is passed through unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `pointer` came from `alloc` above with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u002e",
    b"\\u0000",
    b"\\ud800",
    b":",
    b",",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"18446744073709551616",
    b"\"\"",
    b"{}",
    b"[]",
    b"\"Invoke\"",
    b"\"lambda.amazonaws.com\"",
    b"\"invokedBy\"",
    b"\"userName\"",
    b"\"@timestamp\"",
    b"\xc3\xa9",
    b"\"eventTime\": \"2024-02-30T00:00:00Z\"",
    b"\"user.name\"",
    b"[[[[[[[[",
    b"]]]]]]]]",
    // What rule packs read of raw records.
    b"AKIA",
    b"\"userIdentity\":",
    b"\"sourceIPAddress\":\"::ffff:10.0.0.1\"",
    b"\"requestParameters\":{\"name\":\"x\",\"withDecryption\":true}",
    b"\"resources\":[{\"ARN\":\"arn:x\",\"type\":\"AWS::IAM::Role\"}]",
    b"\"userAgent\":\"S3 Browser\"",
];

fn mutate(random: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + random.below(4) {
        let at = random.below(input.len() + 1);
        match random.below(8) {
            0 if !input.is_empty() => {
                let index = random.below(input.len());
                input[index] ^= 1 << random.below(8);
            }
            1 if !input.is_empty() => {
                let end = (at + random.below(32)).min(input.len());
                input.drain(at..end);
            }
            2 => input.truncate(at),
            3 => {
                let token = TOKENS[random.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            4 => {
                let other = &seeds[random.below(seeds.len())];
                let start = random.below(other.len());
                let end = (start + random.below(256)).min(other.len());
                input.splice(at..at, other[start..end].iter().copied());
            }
            5 if !input.is_empty() => {
                let start = random.below(input.len());
                let end = (start + random.below(64)).min(input.len());
                let copy = input[start..end].to_vec();
                input.splice(at..at, copy);
            }
            6 => {
                let depth = random.below(300);
                let mut wrapped = b"{\"a\":[".repeat(depth);
                wrapped.extend_from_slice(input);
                wrapped.extend(b"]}".repeat(depth));
                *input = wrapped;
            }
            _ => {
                let digit = b'0' + random.below(10) as u8;
                input.insert(at, digit);
            }
        }
    }
}

fn budget() -> Duration {
    let seconds = std::env::var("NEWTERMS_FUZZ_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

fn event_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for file in [
        "tests/fixtures/cloudtrail/lambda_invoke.ndjson",
        "examples/lambda-invocations.ndjson",
    ] {
        let text = std::fs::read_to_string(common::repo().join(file)).expect("seed file");
        seeds.extend(text.lines().map(|line| line.as_bytes().to_vec()));
    }
    seeds.push(
        br#"{"@timestamp":"2024-01-01T00:00:00Z","data_stream.dataset":"aws.cloudtrail","event":{"provider":"lambda.amazonaws.com","action":["Invoke"],"outcome":"success"},"cloud.account.id":"1","user":{"name":["a","b"]},"aws.cloudtrail":{"user_identity.arn":"arn:x"}}"#.to_vec(),
    );
    seeds
}

/// Runs `target` on mutated inputs for the time budget; returns how many ran.
fn fuzz(seeds: &[Vec<u8>], seed: u64, target: impl FnMut(&[u8])) -> u64 {
    let mutated = |random: &mut Rng| {
        let mut input = seeds[random.below(seeds.len())].clone();
        mutate(random, seeds, &mut input);
        input
    };
    fuzz_inputs(seed, mutated, target)
}

/// Runs `target` on the inputs `make` makes, for the time budget; returns how many ran.
fn fuzz_inputs(
    seed: u64,
    mut make: impl FnMut(&mut Rng) -> Vec<u8>,
    mut target: impl FnMut(&[u8]),
) -> u64 {
    let mut random = Rng(seed);
    let deadline = Instant::now() + budget();
    let mut executions = 0;
    while Instant::now() < deadline {
        let input = make(&mut random);
        let baseline = LIVE.get();
        PEAK.set(baseline);
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        let used = (PEAK.get() - baseline).max(0) as usize;
        assert!(
            outcome.is_ok(),
            "panic on input {:?}",
            String::from_utf8_lossy(&input)
        );
        assert!(
            used <= 64 * input.len() + (4 << 20),
            "{used} bytes for an input of {} bytes: {:?}",
            input.len(),
            String::from_utf8_lossy(&input)
        );
        executions += 1;
    }
    executions
}

#[test]
fn events_never_panic_and_stay_in_bounds() {
    let seeds = event_seeds();
    // One detector across inputs, so that history grows and later inputs meet a populated state.
    let mut detector = Detector::new(Config {
        capacity: Some(10_000),
        ..Config::default()
    })
    .expect("config");
    let executions = fuzz(&seeds, 0x5eed, |input| {
        let _ = detector.process(&String::from_utf8_lossy(input));
    });
    eprintln!("fuzz process-event: {executions} executions, no panic");
    assert!(executions > 100);
}

/// Restores `input` into `whole` at once and into `pieces` in pieces of a size the input picks:
/// both decide the same. What they accept reads back as the same snapshot (from `pieces` in
/// pieces too), which restores again. Whether `input` was accepted.
fn restores_alike(whole: &mut Engine, pieces: &mut Engine, input: &[u8]) -> bool {
    let restored = whole.restore(input).map(drop);
    let size = 1 + input.iter().map(|&byte| usize::from(byte)).sum::<usize>() % 61;
    pieces.restore_begin(input.len() as u64);
    let in_pieces = input
        .chunks(size)
        .try_for_each(|piece| pieces.restore_write(piece))
        .and_then(|()| pieces.restore_end());
    assert_eq!(in_pieces, restored, "pieces of {size}");
    if restored.is_err() {
        return false;
    }
    let again = whole.snapshot();
    pieces.snapshot_begin();
    let read: Vec<u8> = std::iter::from_fn(|| Some(pieces.snapshot_read(size)))
        .take_while(|piece| !piece.is_empty())
        .flatten()
        .collect();
    assert!(read == again, "a snapshot read in pieces of {size}");
    whole
        .restore(&again)
        .expect("a restored state snapshots and restores again");
    assert!(whole.snapshot() == again);
    true
}

#[test]
fn restore_never_panics_and_what_it_accepts_works() {
    let mut detector = Detector::new(Config::default()).expect("config");
    for line in event_seeds() {
        let _ = detector.process(&String::from_utf8_lossy(&line));
    }
    let seeds = vec![
        detector.snapshot(),
        include_bytes!("../../tests/fixtures/state/snapshot-v1.bin").to_vec(),
        Detector::new(Config::default()).expect("config").snapshot(),
    ];
    let mut accepted = 0;
    let executions = fuzz(&seeds, 0xbadc0de, |input| {
        let built_in = || Engine::built_in(Config::default()).expect("config");
        if restores_alike(&mut built_in(), &mut built_in(), input) {
            accepted += 1;
        }
    });
    eprintln!(
        "fuzz restore: {executions} executions, {accepted} accepted (mutations that kept the checksum), no panic"
    );
    assert!(executions > 100);
}

/// Every rule file the tests can reach: the published ones beside the repository, or the copies the
/// repository keeps.
#[cfg(feature = "rule-toml")]
fn reachable_rules() -> Vec<newterms_guest::kql::Rule> {
    let published = common::published_rules();
    let rules: Vec<_> = common::toml_files(&published)
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("rule file");
            newterms_guest::kql::load_rule(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        })
        .collect();
    assert!(rules.len() >= 5, "{}", published.display());
    rules
}

/// Seeds for a rule pack: the event seeds, raw records of every kind from the mixed corpus, and
/// some of them as the pipeline's ECS documents.
#[cfg(feature = "rule-toml")]
fn pack_seeds() -> Vec<Vec<u8>> {
    let corpus =
        common::read_corpus(&common::repo().join("tests/fixtures/cloudtrail/mixed_all.ndjson.gz"));
    let mut seeds = event_seeds();
    for (index, line) in corpus.lines().step_by(7).take(400).enumerate() {
        seeds.push(line.as_bytes().to_vec());
        if index % 4 == 0
            && let Ok(serde_json::Value::Object(record)) = serde_json::from_str(line)
        {
            seeds.push(
                newterms_guest::cloudtrail::to_ecs(&record)
                    .to_string()
                    .into_bytes(),
            );
        }
    }
    assert!(seeds.len() > 300);
    seeds
}

#[cfg(feature = "rule-toml")]
fn pack_detector(rules: &[newterms_guest::kql::Rule]) -> newterms_guest::RulePackDetector {
    let pack = newterms_guest::kql::Pack::new(rules.to_vec()).expect("pack");
    newterms_guest::RulePackDetector::new(
        pack,
        Config {
            capacity: Some(10_000),
            ..Config::default()
        },
    )
    .expect("config")
}

/// Detectors of one pack fed the same lines: the fast paths (text, bytes, NDJSON buffers, and the
/// stages `--threads` runs) must decide each as the full path alone does, and end in the same
/// state.
#[cfg(feature = "rule-toml")]
struct PackComparison {
    fast: newterms_guest::RulePackDetector,
    bytes: newterms_guest::RulePackDetector,
    buffered: newterms_guest::RulePackDetector,
    /// As `--threads` runs a pack: extracted by one, decided by another.
    extractor: newterms_guest::Engine,
    decider: newterms_guest::Engine,
    full: newterms_guest::RulePackDetector,
    decided: u64,
    refused: u64,
    blank: u64,
}

#[cfg(feature = "rule-toml")]
impl PackComparison {
    fn new(rules: &[newterms_guest::kql::Rule]) -> Self {
        Self {
            fast: pack_detector(rules),
            bytes: pack_detector(rules),
            buffered: pack_detector(rules),
            extractor: newterms_guest::Engine::Pack(Box::new(pack_detector(rules))),
            decider: newterms_guest::Engine::Pack(Box::new(pack_detector(rules))),
            full: pack_detector(rules),
            decided: 0,
            refused: 0,
            blank: 0,
        }
    }

    /// One line (no line break), trimmed as a host's reader gives it.
    fn line(&mut self, text: &str) {
        let expected = self.full.process_exact(text);
        let before = self.fast.fast_path_events() + self.fast.sparse_path_events();
        assert_eq!(self.fast.process(text), expected, "{text}");
        self.decided += self.fast.fast_path_events() + self.fast.sparse_path_events() - before;
        self.refused += u64::from(expected.is_err());
        let expected = expected.map_err(newterms_guest::LineError::Event);
        assert_eq!(
            self.bytes.process_bytes(text.as_bytes()),
            expected,
            "{text}"
        );
        let outcomes = self.buffered.process_ndjson(text.as_bytes());
        let staged =
            common::process_in_stages(&mut self.extractor, &mut self.decider, text.as_bytes());
        self.blank += u64::from(text.is_empty());
        for outcomes in [outcomes, staged] {
            match &expected {
                // A buffer's blank lines are no events.
                _ if text.is_empty() => assert!(outcomes.is_empty()),
                Ok(alerts) if alerts.is_empty() => assert!(outcomes.is_empty(), "{text}"),
                _ => {
                    assert_eq!(outcomes.len(), 1, "{text}");
                    assert_eq!(outcomes[0].outcome, expected, "{text}");
                }
            }
        }
    }

    /// The same state and counters everywhere; how many lines a fast path decided and how many
    /// were refused.
    fn finish(&self) -> (u64, u64) {
        for other in [&self.fast, &self.bytes, &self.buffered] {
            assert!(other.snapshot() == self.full.snapshot(), "the same state");
        }
        assert!(
            self.decider.snapshot() == self.full.snapshot(),
            "the same state in stages"
        );
        let events = self.full.stats();
        assert_eq!(self.fast.stats(), events);
        assert_eq!(self.bytes.stats(), events);
        let lines = newterms_guest::Stats {
            events: events.events - self.blank,
            errors: events.errors - self.blank,
            ..events
        };
        assert_eq!(self.buffered.stats(), lines);
        assert_eq!(self.decider.stats(), lines);
        (self.decided, self.refused)
    }
}

/// A pack of every reachable rule decides every mutated input as its full path alone does (fast
/// path, sparse ECS path, bytes, NDJSON buffers), never panics, and ends in the same state.
#[cfg(feature = "rule-toml")]
#[test]
fn rule_packs_decide_every_input_as_their_full_path() {
    let rules = reachable_rules();
    let seeds = pack_seeds();
    let mut comparison = PackComparison::new(&rules);
    // Inputs that are not UTF-8 go as bytes to one of their own, whose state then differs.
    let mut raw = pack_detector(&rules);
    let executions = fuzz(&seeds, 0x9ac5_f022, |input| {
        let _ = raw.process_bytes(input);
        let text = String::from_utf8_lossy(input).replace('\n', " ");
        comparison.line(text.trim());
    });
    let (decided, refused) = comparison.finish();
    eprintln!(
        "fuzz rule pack ({} rules): {executions} executions, {decided} decided by a fast path, \
         {refused} refused, all as the full path",
        rules.len()
    );
    assert!(executions > 100);
    // Enough of each kind that the comparison is not vacuous.
    assert!(
        decided > 10 && refused > 10,
        "{decided} decided, {refused} refused"
    );
}

/// Keys the raw mapping and the rules read, for mutated documents to hold in odd places.
#[cfg(feature = "rule-toml")]
const READ_KEYS: &str = "eventName eventSource eventTime eventType eventVersion userIdentity type arn
    accessKeyId userName accountId principalId invokedBy sessionContext sessionIssuer sourceIPAddress
    userAgent requestParameters responseElements additionalEventData resources ARN errorCode
    errorMessage recipientAccountId awsRegion eventID tlsDetails clientProvidedHostHeader MFAUsed
    ConsoleLogin serialNumber withDecryption @timestamp event action provider outcome dataset user
    name id source ip address cloud account aws cloudtrail user_identity access_key_id event.action
    event.provider user.name source.ip cloud.account.id user_agent.original data_stream.dataset";

/// Values of every JSON kind, and strings the rules test.
#[cfg(feature = "rule-toml")]
const ODD_VALUES: &str = r#"[null, "", true, false, 0, -1, 1.5, 1e3, 445, -0, 18446744073709551616,
    "AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE", "10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1",
    "lambda.amazonaws.com", "Invoke", "AssumedRole", "IAMUser", "Root", "S3 Browser", "Success",
    "Failure", "2024-05-01T00:00:00Z", "2024-05-01T00:00:00.123+02:00", "aws.cloudtrail", "é", [], {},
    ["a", "b"], [null], {"a": 1}, [{"ARN": "arn:x", "type": "AWS::IAM::Role"}]]"#;

/// A node of `value` at random: the root, or a node beneath it.
#[cfg(feature = "rule-toml")]
fn some_node<'v>(random: &mut Rng, value: &'v mut serde_json::Value) -> &'v mut serde_json::Value {
    use serde_json::Value;
    let members = match value {
        Value::Object(map) => map.len(),
        Value::Array(items) => items.len(),
        _ => 0,
    };
    if members == 0 || random.below(3) == 0 {
        return value;
    }
    let index = random.below(members);
    match value {
        Value::Object(map) => some_node(random, map.values_mut().nth(index).expect("a member")),
        Value::Array(items) => some_node(random, &mut items[index]),
        scalar => scalar,
    }
}

/// One to three changes to a document's tree that keep it JSON: a value replaced by one of another
/// kind or by a piece of another document, wrapped in an array, a key renamed to one the rules read
/// or removed, a member added, a string changed, an object spelled as dotted keys.
#[cfg(feature = "rule-toml")]
fn mutate_tree(random: &mut Rng, others: &[serde_json::Value], document: &mut serde_json::Value) {
    use serde_json::Value;
    let odd_values: Vec<Value> = serde_json::from_str(ODD_VALUES).expect("a JSON array");
    let read_keys: Vec<&str> = READ_KEYS.split_whitespace().collect();
    let odd_value = |random: &mut Rng| odd_values[random.below(odd_values.len())].clone();
    let read_key = |random: &mut Rng| read_keys[random.below(read_keys.len())].to_owned();
    for _ in 0..1 + random.below(3) {
        let node = some_node(random, document);
        match random.below(8) {
            0 => *node = odd_value(random),
            1 => {
                let mut other = others[random.below(others.len())].clone();
                *node = some_node(random, &mut other).clone();
            }
            2 => *node = Value::Array(vec![node.take(), odd_value(random)]),
            3 => {
                if let Value::Object(map) = node
                    && let Some(key) = map.keys().nth(random.below(map.len().max(1))).cloned()
                {
                    let value = map.remove(&key).expect("the key");
                    if random.below(4) != 0 {
                        map.insert(read_key(random), value);
                    }
                }
            }
            4 => {
                if let Value::Object(map) = node {
                    map.insert(read_key(random), odd_value(random));
                }
            }
            5 => {
                if let Value::String(text) = node {
                    match random.below(4) {
                        0 => text.push(' '),
                        1 => *text = text.to_uppercase(),
                        2 => text.insert_str(0, "AKIA"),
                        _ => {
                            let mut end = random.below(text.len() + 1);
                            while !text.is_char_boundary(end) {
                                end -= 1;
                            }
                            text.truncate(end);
                        }
                    }
                }
            }
            6 => *node = common::dotted(node, random.below(3)),
            _ => {}
        }
    }
}

/// How a document is written: JSON whitespace between tokens, escapes in strings where none is
/// needed, and keys written twice (the last one counts, as in `serde_json`).
#[cfg(feature = "rule-toml")]
struct Spelling {
    /// Percent of places between tokens that get whitespace.
    spaces: usize,
    /// Percent of a string's characters written as `\u` escapes.
    escapes: usize,
    /// Percent of members written beside a decoy of the same key.
    duplicates: usize,
}

#[cfg(feature = "rule-toml")]
impl Spelling {
    fn any(random: &mut Rng) -> Self {
        let mostly_none = |random: &mut Rng, most: usize| match random.below(3) {
            0 => random.below(most + 1),
            _ => 0,
        };
        Self {
            spaces: [0, 0, 100, random.below(101)][random.below(4)],
            escapes: mostly_none(random, 30),
            duplicates: mostly_none(random, 20),
        }
    }

    fn write(&self, random: &mut Rng, value: &serde_json::Value, out: &mut String) {
        use serde_json::Value;
        match value {
            Value::Object(map) => {
                out.push('{');
                for (index, (key, child)) in map.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    // A decoy of the same key before the member (which then counts) or after it
                    // (which then does not).
                    let decoy = random.chance(self.duplicates).then(|| {
                        let value = ["null", "\"decoy\"", "{}"][random.below(3)];
                        (
                            serde_json::from_str(value).expect("a JSON value"),
                            random.below(2) == 0,
                        )
                    });
                    if let Some((value, true)) = &decoy {
                        self.member(random, key, value, out);
                        out.push(',');
                    }
                    self.member(random, key, child, out);
                    if let Some((value, false)) = &decoy {
                        out.push(',');
                        self.member(random, key, value, out);
                    }
                }
                self.space(random, out);
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    self.space(random, out);
                    self.write(random, item, out);
                    self.space(random, out);
                }
                out.push(']');
            }
            Value::String(text) => self.string(random, text, out),
            other => out.push_str(&other.to_string()),
        }
    }

    fn member(&self, random: &mut Rng, key: &str, value: &serde_json::Value, out: &mut String) {
        self.space(random, out);
        self.string(random, key, out);
        self.space(random, out);
        out.push(':');
        self.space(random, out);
        self.write(random, value, out);
        self.space(random, out);
    }

    fn string(&self, random: &mut Rng, text: &str, out: &mut String) {
        out.push('"');
        for character in text.chars() {
            match character {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                character if (character as u32) < 0x20 => {
                    out.push_str(&format!("\\u{:04x}", character as u32));
                }
                character if random.chance(self.escapes) => {
                    let mut units = [0; 2];
                    for unit in character.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                character => out.push(character),
            }
        }
        out.push('"');
    }

    /// JSON whitespace other than a line break, which would end the line.
    fn space(&self, random: &mut Rng, out: &mut String) {
        if random.chance(self.spaces) {
            out.push_str([" ", " ", "  ", "\t", "\r"][random.below(5)]);
        }
    }
}

/// A pack of every reachable rule decides documents that stay valid JSON, but are odd in every
/// way the fast paths read (values of other kinds, renamed and dotted keys, whitespace, needless
/// escapes, duplicate keys), as its full path alone does.
#[cfg(feature = "rule-toml")]
#[test]
fn rule_packs_decide_odd_valid_documents_as_their_full_path() {
    let rules = reachable_rules();
    let documents: Vec<serde_json::Value> = pack_seeds()
        .iter()
        .filter_map(|seed| serde_json::from_slice(seed).ok())
        .collect();
    let mut comparison = PackComparison::new(&rules);
    let make = |random: &mut Rng| {
        let mut document = documents[random.below(documents.len())].clone();
        mutate_tree(random, &documents, &mut document);
        let mut text = String::new();
        Spelling::any(random).write(random, &document, &mut text);
        text.into_bytes()
    };
    let executions = fuzz_inputs(0x0dd_5eed, make, |input| {
        let text = std::str::from_utf8(input).expect("written as text");
        comparison.line(text.trim());
    });
    let (decided, refused) = comparison.finish();
    eprintln!(
        "fuzz rule pack, odd valid documents ({} rules): {executions} executions, {decided} \
         decided by a fast path, {refused} refused, all as the full path",
        rules.len()
    );
    assert!(executions > 100);
    assert!(decided > 10, "{decided} decided");
}

/// A pack's snapshot, mutated: restoring it never panics, in one piece or in several, and what it
/// accepts snapshots and restores again.
#[cfg(feature = "rule-toml")]
#[test]
fn pack_restore_never_panics_and_what_it_accepts_works() {
    let rules = reachable_rules();
    let mut learned = pack_detector(&rules);
    for seed in pack_seeds() {
        let _ = learned.process_bytes(&seed);
    }
    let seeds = vec![learned.snapshot(), pack_detector(&rules).snapshot()];
    let mut accepted = 0;
    // Made once: a pack's rules are more than an input's memory bound. A restore replaces the
    // whole state, or changes nothing when it fails.
    let pack = || Engine::Pack(Box::new(pack_detector(&rules)));
    let (mut whole, mut pieces) = (pack(), pack());
    let executions = fuzz(&seeds, 0x9ac5_5eed, |input| {
        if restores_alike(&mut whole, &mut pieces, input) {
            accepted += 1;
        }
    });
    eprintln!("fuzz pack restore: {executions} executions, {accepted} accepted, no panic");
    assert!(executions > 10);
}
