//! What the rule crate's unit tests share.

/// A small deterministic generator (xorshift) for the random inputs of tests.
pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
