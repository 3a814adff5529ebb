//! The vector pass: sixteen bytes at a time (WebAssembly SIMD in the component, SSE2 natively), two
//! vectors a step, finding together where the needle may start (its first, middle and last bytes in
//! place) and the first odd byte.

use super::{LAST_AT, NEEDLE, NEEDLE_BYTES, Survey, odd_bytes};
use crate::lanes::{Lanes, WIDTH};

const MIDDLE_AT: usize = NEEDLE_BYTES.len() / 2;
/// The bytes one vector step reads: its own, and the needle's last byte for a needle starting in it.
const SPAN: usize = LAST_AT + WIDTH;
/// A byte in no needle and not odd to the survey: pads the end of a text to a whole step.
const PADDING: u8 = {
    let mut byte = b'#';
    while byte < b'~' {
        let mut in_needle = false;
        let mut index = 0;
        while index < NEEDLE_BYTES.len() {
            in_needle |= NEEDLE_BYTES[index] == byte;
            index += 1;
        }
        if !in_needle && byte != b'\\' {
            break;
        }
        byte += 1;
    }
    byte
};

/// What the vector pass saw.
struct Pass {
    /// Where the first odd byte (a backslash, a byte below 0x20 or above 0x7F) is, or the end of
    /// the text. The pass stops at the step holding it.
    first_odd: usize,
    /// Every position before this was looked at as a possible start of the needle.
    searched: usize,
    /// The first place before `searched` where the needle's first, middle and last bytes stand,
    /// if there is one: no spelling of the needle starts before it.
    needle_at: Option<usize>,
}

impl Pass {
    /// No spelling of the needle starts before this: where its bytes first stand, or where the
    /// pass stopped looking.
    fn needle_from(&self) -> usize {
        self.needle_at.unwrap_or(self.searched)
    }
}

/// One pass over `text`, a whole record.
pub fn survey(text: &[u8]) -> Survey {
    let pass = vector_pass(text);
    match text.get(pass.first_odd..) {
        Some(rest) if !rest.is_empty() => Survey::of_rest(&pass, rest, text.len()),
        _ => Survey::plain(&pass),
    }
}

/// The first line of `buffer`: where it ends (its `\n`, or the end of the buffer), and the survey of
/// the line trimmed of ASCII whitespace, which is what [`crate::Detector::process_ndjson`]
/// evaluates. One pass finds both: a line break is an odd byte, so in a plain line the first odd
/// byte is the line break.
pub fn survey_line(buffer: &[u8]) -> (usize, Survey) {
    let pass = vector_pass(buffer);
    let from_odd = buffer.get(pass.first_odd..).unwrap_or_default();
    // What is evaluated is the line trimmed: the needle's place is counted from its first byte.
    let leading = |line: &[u8]| line.len() - line.trim_ascii_start().len();
    if from_odd.first() == Some(&b'\n') {
        let line = buffer.get(..pass.first_odd).unwrap_or_default();
        return (
            pass.first_odd,
            Survey::plain(&pass).trimmed_by(leading(line)),
        );
    }
    let end = memchr::memchr(b'\n', from_odd).map_or(buffer.len(), |at| pass.first_odd + at);
    let line = buffer.get(..end).unwrap_or_default();
    let first = leading(line);
    let last = line.trim_ascii_end().len();
    let rest = line
        .get(pass.first_odd.max(first)..last)
        .unwrap_or_default();
    (end, Survey::of_rest(&pass, rest, last).trimmed_by(first))
}

impl Survey {
    /// The survey of the text `leading` bytes shorter at its start (trimmed of whitespace).
    fn trimmed_by(self, leading: usize) -> Self {
        Self {
            needle_from: self.needle_from.saturating_sub(leading),
            ..self
        }
    }

    /// The survey of a text with no odd byte before `pass.first_odd`, where it ends.
    fn plain(pass: &Pass) -> Self {
        Self {
            maybe_needle: pass.needle_at.is_some() && NEEDLE.is_some(),
            needle_from: pass.needle_from(),
            special: false,
            non_ascii: false,
        }
    }

    /// The survey of a text whose vector pass was `pass`, whose bytes from the first odd byte are
    /// `rest` (trimmed), and whose needle could start anywhere before `end`.
    fn of_rest(pass: &Pass, rest: &[u8], end: usize) -> Self {
        let (special, non_ascii) = odd_bytes(rest);
        Self {
            maybe_needle: (pass.needle_at.is_some() || special || non_ascii || end > pass.searched)
                && NEEDLE.is_some(),
            needle_from: pass.needle_from(),
            special,
            non_ascii,
        }
    }
}

/// Bytes one step of the main loop covers: two vectors.
const STEP: usize = 2 * WIDTH;
/// What the two vectors of a step read.
const DOUBLE_SPAN: usize = WIDTH + SPAN;

/// Sixteen bytes at a time (WebAssembly SIMD in the component), two vectors a step: looks for the
/// needle up to the first odd byte. In a record that is the rare case (an escape, a tab, non-ASCII
/// text); at the end of a line it is the line break.
fn vector_pass(text: &[u8]) -> Pass {
    // Until the needle's bytes first stand in place, then (they are found) for odd bytes alone.
    let mut steps = whole_steps::<true>(text, 0);
    let mut needle_at = steps.found_at;
    if needle_at.is_some() && steps.odd.is_none() {
        steps = whole_steps::<false>(text, steps.at + STEP);
    }
    if let Some(odd) = steps.odd {
        return Pass {
            first_odd: steps.at + odd.trailing_zeros() as usize,
            searched: steps.at + STEP,
            needle_at,
        };
    }
    // The rest, shorter than a step and its reach, padded to whole vectors.
    let tail = text.get(steps.at..).unwrap_or_default();
    let mut padded = [PADDING; 2 * STEP + SPAN];
    if let Some(start) = padded.get_mut(..tail.len()) {
        start.copy_from_slice(tail);
    }
    for vector in (0..tail.len()).step_by(WIDTH) {
        let (odd, found_here) = look(padded.get(vector..).and_then(<[u8]>::first_chunk::<SPAN>));
        if needle_at.is_none() && found_here.any() {
            needle_at = Some(steps.at + vector + found_here.bitmask().trailing_zeros() as usize);
        }
        if odd.any() {
            return Pass {
                first_odd: steps.at + vector + odd.bitmask().trailing_zeros() as usize,
                searched: steps.at + vector + WIDTH,
                needle_at,
            };
        }
    }
    Pass {
        first_odd: text.len(),
        searched: text.len(),
        needle_at,
    }
}

/// What the steps that fit whole in a text saw.
struct Steps {
    /// Where the last step looked at starts (the one with an odd byte, or the needle's bytes in
    /// place), or where the steps end.
    at: usize,
    /// The odd bytes of the step at `at`, one bit a byte; `None` if the steps ran out first, or
    /// stopped where the needle's bytes stand.
    odd: Option<u32>,
    /// Where the needle's first, middle and last bytes first stand in place, if in the steps.
    found_at: Option<usize>,
}

/// The main loop from `from`: up to the first step with an odd byte, or with `NEEDLE`, the
/// needle's bytes in place. Out of line, so that the constants it compares with are not also live
/// across the rest of the pass (the tail's calls would make the compiled loop keep them on the
/// stack); once the needle is found the loop goes on without its compares.
#[inline(never)]
fn whole_steps<const NEEDLE: bool>(text: &[u8], from: usize) -> Steps {
    let mut at = from;
    while let Some(window) = text.get(at..).and_then(<[u8]>::first_chunk::<DOUBLE_SPAN>) {
        let (odd_first, found_first) = look(window.first_chunk::<SPAN>());
        let (odd_second, found_second) = look(window.last_chunk::<SPAN>());
        let odd = odd_first.or(odd_second);
        let found = found_first.or(found_second);
        if odd.or(if NEEDLE { found } else { odd }).any() {
            let found = u32::from(found_first.bitmask()) | u32::from(found_second.bitmask()) << 16;
            return Steps {
                at,
                odd: odd.any().then(|| {
                    u32::from(odd_first.bitmask()) | u32::from(odd_second.bitmask()) << 16
                }),
                found_at: (NEEDLE && found != 0).then(|| at + found.trailing_zeros() as usize),
            };
        }
        at += STEP;
    }
    Steps {
        at,
        odd: None,
        found_at: None,
    }
}

/// One vector, the first `WIDTH` bytes of `window`: where odd bytes are, and where the needle's
/// first, middle and last bytes stand in place (read from the window's later bytes).
#[inline(always)]
fn look(window: Option<&[u8; SPAN]>) -> (Lanes, Lanes) {
    let view = |offset: usize| window?.get(offset..)?.first_chunk::<WIDTH>();
    let (Some(here), Some(middle), Some(last)) = (view(0), view(MIDDLE_AT), view(LAST_AT)) else {
        // Unreachable (the window is long enough), but if it were: odd, so the exact checks run.
        let all = Lanes::splat(0xff);
        return (all, all);
    };
    // Spelled out rather than `array::map`, which a size-optimised build keeps as a loop.
    let (here, middle, last) = (Lanes::load(here), Lanes::load(middle), Lanes::load(last));
    // Signed, bytes of 0x80 and above are below 0x20 too.
    let odd = here
        .eq(Lanes::splat(b'\\'))
        .or(here.lt_signed(Lanes::splat(b' ')));
    let found = here
        .eq(Lanes::splat(NEEDLE_BYTES[0]))
        .and(middle.eq(Lanes::splat(NEEDLE_BYTES[MIDDLE_AT])))
        .and(last.eq(Lanes::splat(NEEDLE_BYTES[LAST_AT])));
    (odd, found)
}
