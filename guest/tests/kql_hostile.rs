//! Hostile rule text can do no more than a hostile event: mutated queries and rule files from the
//! published rules are parsed, compiled and evaluated, and every outcome is a value or a typed
//! error, never a panic.
#![cfg(feature = "rule-toml")]

use newterms_guest::kql::{self, Compiled};
use serde_json::json;

mod common;

/// A small deterministic generator (xorshift), so that a failure reproduces.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

const ALPHABET: &[char] = &[
    '(', ')', '{', '}', ':', '"', '\\', '*', '?', '<', '>', '=', ' ', '\n', 'a', 'o', 'r', 'n',
    't', 'd', '.', '/', 'u', '0', '9', '\u{a0}', 'é', '\u{2028}',
];

fn mutate(text: &str, random: &mut Random) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=random.below(4) {
        let at = random.below(chars.len() + 1);
        match random.below(4) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => chars.insert(at, ALPHABET[random.below(ALPHABET.len())]),
            2 if at < chars.len() => {
                let end = (at + random.below(40)).min(chars.len());
                let piece: Vec<char> = chars[at..end].to_vec();
                let to = random.below(chars.len() + 1);
                for (offset, c) in piece.into_iter().enumerate() {
                    chars.insert((to + offset).min(chars.len()), c);
                }
            }
            _ => {
                let keyword = [" or ", " and ", "not ", "\\or", ": *", ":{", "\\u12"];
                for c in keyword[random.below(keyword.len())].chars().rev() {
                    chars.insert(at, c);
                }
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_rules_never_panic() {
    let folder = common::copied_rules();
    let documents = [
        json!({}),
        json!({"event": {"action": "x", "category": ["process", "network"]}, "source.ip": "10.0.0.1"}),
        json!({"process": {"name": ["cmd.exe", null, 1, true], "args": [{"a": "b"}]}, "n": 1e300}),
    ];
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let (mut parsed, mut refused) = (0, 0);
    // By name, so that the mutations, drawn from one generator across the files, are the same on
    // every filesystem.
    for path in common::toml_files(&folder) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let Ok(rule) = kql::load_rule(&text) else {
            continue;
        };
        for _ in 0..300 {
            let query = mutate(&rule.query_text, &mut random);
            match kql::parse(&query).map(|query| Compiled::new(&query)) {
                Ok(Ok(compiled)) => {
                    parsed += 1;
                    for document in &documents {
                        let _ = compiled.matches(document);
                    }
                    let _ = kql::require::of(&kql::parse(&query).unwrap_or(kql::Query::All));
                }
                Ok(Err(_)) | Err(_) => refused += 1,
            }
        }
        for _ in 0..100 {
            let mutated = mutate(&text, &mut random);
            if let Ok(rule) = kql::load_rule(&mutated) {
                for document in &documents {
                    let _ = rule.matches(document);
                }
            }
        }
    }
    assert!(
        parsed > 100 && refused > 100,
        "{parsed} parsed, {refused} refused"
    );
}
