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
