//! Helpers shared by the guest's test binaries.

// Each test binary uses its own share of these.
#![allow(dead_code)]

/// xorshift64*: a deterministic generator with no dependency, so that a failing case is reproducible
/// from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The repository's root.
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The published rule files the repository keeps copies of, with their provenance.
pub fn copied_rules() -> std::path::PathBuf {
    repo().join("guest/tests/data/elastic-rules")
}

/// All the published rule files beside the repository (`../shared`), or the copies it keeps in a
/// clone without them.
pub fn published_rules() -> std::path::PathBuf {
    shared("elastic-rules/new_terms").unwrap_or_else(copied_rules)
}

/// The folders of published rule files: the repository's copies, then all of them in `../shared`
/// when it is beside the repository.
pub fn rule_folders() -> Vec<std::path::PathBuf> {
    let mut folders = vec![copied_rules()];
    folders.extend(shared("elastic-rules/new_terms"));
    folders
}

/// The `.toml` files in `folder`, by name; none when it cannot be read.
pub fn toml_files(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

/// `shared/data/<rest>` in the repository's parent folder or any folder above it.
pub fn shared(rest: &str) -> Option<std::path::PathBuf> {
    let root = repo().canonicalize().ok()?;
    root.ancestors()
        .skip(1)
        .map(|folder| folder.join("shared/data").join(rest))
        .find(|path| path.exists())
}

/// `document` with the objects below `depth` levels of it spelled as dotted keys of the object
/// above them.
pub fn dotted(document: &serde_json::Value, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    let Value::Object(map) = document else {
        return document.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, child) in map {
        match (child, dotted(child, depth.saturating_sub(1))) {
            (Value::Object(_), Value::Object(inner)) if depth == 0 => {
                for (below, value) in inner {
                    out.insert(format!("{key}.{below}"), value);
                }
            }
            (_, child) => {
                out.insert(key.clone(), child);
            }
        }
    }
    Value::Object(out)
}

/// A corpus file's text, gzip or not; empty when it cannot be read.
pub fn read_corpus(path: &std::path::Path) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    if path.extension().is_some_and(|extension| extension == "gz") {
        let mut text = String::new();
        let decoded =
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text);
        return if decoded.is_ok() { text } else { String::new() };
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// `process_ndjson` as the host runs it on several cores: `extract_ndjson` on one engine (any
/// number of them, stateless), `decide` in order on another, `alerts_for` for the new terms. The
/// outcomes `process_ndjson` would have returned.
pub fn process_in_stages(
    extractor: &mut newterms_guest::Engine,
    decider: &mut newterms_guest::Engine,
    buffer: &[u8],
) -> Vec<newterms_guest::LineOutcome> {
    let extraction = extractor.extract_ndjson(buffer);
    assert!(extraction.counts_add_up(), "every term is a line's");
    let lines: Vec<&[u8]> = buffer.split(|&byte| byte == b'\n').collect();
    let mut fresh = decider.decide(&extraction).into_iter().peekable();
    let mut out = Vec::new();
    for (extracted, terms) in extraction.lines_with_terms() {
        let outcome = match &extracted.outcome {
            Err(error) => Err(error.clone()),
            Ok(observation) => {
                let Some(new) = fresh.next_if(|new| new.line == extracted.line) else {
                    continue;
                };
                assert_eq!(terms.len(), observation.terms as usize);
                let keys: Vec<Vec<u8>> = new
                    .terms
                    .iter()
                    .map(|&index| {
                        terms
                            .get(index as usize)
                            .unwrap_or_else(|| panic!("line {}: no term {index}", extracted.line))
                            .to_vec()
                    })
                    .collect();
                let text = std::str::from_utf8(lines[extracted.line as usize].trim_ascii())
                    .unwrap_or_else(|error| panic!("a line with terms is UTF-8: {error}"));
                let alerts = decider
                    .alerts_for(text, &keys)
                    .unwrap_or_else(|error| panic!("{text}: {error}"));
                assert_eq!(alerts.len(), keys.len());
                Ok(alerts)
            }
        };
        out.push(newterms_guest::LineOutcome {
            line: extracted.line,
            outcome,
        });
    }
    assert!(
        fresh.next().is_none(),
        "a new term on a line that observes none"
    );
    out
}
