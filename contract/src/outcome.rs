//! What a rule reports, and how it is configured, in the words both sides use: refusals, per-line
//! outcomes, counters and memory, configuration refusals, profiles. The rule crate and the host both
//! speak these (each converts its generated WIT types to them in one file); their wording is in
//! [`crate::wording`].

/// Why an event was refused; it changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Not JSON, or nested too deep.
    MalformedJson(String),
    /// JSON, but not an object.
    NotAnObject,
    /// Matches the query but has no time.
    MissingTime,
    /// Matches the query but its time does not parse.
    InvalidTime(String),
    /// More term combinations than the rule takes in one event.
    TooManyTerms(u64),
}

/// Why one line of a newline-delimited buffer raised no alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line is not UTF-8; carries the offset of the first invalid byte within the (trimmed)
    /// line. Such a line is not an event: it changes no counter.
    NotUtf8(u32),
    /// The event was refused.
    Event(EventError),
}

/// What one line of a newline-delimited buffer produced, when it produced anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineOutcome {
    /// 0-based index of the line within the buffer (every `\n` ends a line, blank lines included).
    pub line: u32,
    /// The alerts it raised (never empty), or why it was refused.
    pub outcome: Result<Vec<String>, LineError>,
}

/// Memory the rule holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// The whole linear memory when running as WebAssembly, else 0.
    pub linear_memory_bytes: u64,
    /// Bytes allocated by the history.
    pub history_bytes: u64,
    /// Bytes of the encoded terms themselves.
    pub term_bytes: u64,
    /// Terms in history.
    pub terms: u64,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Events matching the query.
    pub matched: u64,
    /// Matching events dropped by an exception.
    pub excepted: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Events refused.
    pub errors: u64,
    /// Terms in history.
    pub terms: u64,
    /// Terms evicted for room.
    pub evictions: u64,
}

/// Events with a value of `field` matching one of `patterns` (`*`, `?` wildcards) are dropped after
/// the query: they neither alert nor count as history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// ECS field name, e.g. `aws.cloudtrail.user_identity.arn`.
    pub field: String,
    /// Case-sensitive KQL wildcard patterns.
    pub patterns: Vec<String>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A capacity of zero.
    ZeroCapacity,
    /// A window of zero.
    InvalidWindow(u64),
    /// An exception without field or patterns.
    InvalidException(String),
    /// A partition whose index is not below its count.
    InvalidPartition {
        /// The bucket asked for.
        index: u32,
        /// The buckets there are.
        count: u32,
    },
}

/// An instance's share of the terms when an engine spreads a stream over several: bucket `index` of
/// `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Which bucket, below `count`.
    pub index: u32,
    /// How many buckets the terms are spread over.
    pub count: u32,
}

/// The bucket (of `count`) of a term, by its encoded key (the history's key): how engines spread
/// terms over instances. The rule's `route` and [`Partition`] use it, and so does a host that routes
/// the terms `extract` reports, so that none can disagree.
pub fn bucket_of(key: &[u8], count: u32) -> u32 {
    crc32fast::hash(key) % count.max(1)
}

/// Where an event goes when a stream is spread over several instances (the rule's `route`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// The buckets of its terms, sorted; empty when it changes no history.
    pub buckets: Vec<u32>,
    /// Its time, milliseconds since the epoch, when it has buckets.
    pub time: Option<i64>,
}

/// Which reading of the rule runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    /// The seed's wording, with the root-identity gap closed: 14-day window; `user.name` falls back
    /// to the identity's ARN.
    #[default]
    Default,
    /// Parity with the published rule: 7-day window, no fallback.
    Elastic,
}

impl Profile {
    /// The profile's name as the CLI and configuration spell it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Elastic => "elastic",
        }
    }

    /// The profile of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Profile::Default, Profile::Elastic]
            .into_iter()
            .find(|profile| profile.name() == name)
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Profile::from_name(name).ok_or_else(|| crate::wording::unknown_profile(name))
    }
}

/// The time and the terms one event observes: the stateless half of processing it, which the
/// history then decides on (see [`Extraction`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The event's time, milliseconds since the epoch.
    pub time: i64,
    /// How many terms the event observes: the next this many of its extraction's
    /// [`Extraction::terms`], in the order processing observes them.
    pub terms: u32,
}

/// A line of a newline-delimited buffer that observes terms or was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedLine {
    /// 0-based index of the line within the buffer (every `\n` ends a line, blank lines included).
    pub line: u32,
    /// What it observes, or why it was refused.
    pub outcome: Result<Observation, LineError>,
}

/// Everything of a newline-delimited buffer that does not depend on history (prefilter, parse,
/// query, exceptions, time, term combinations): what the rule's `extract` returns and its `decide`
/// applies to the history, in order, as processing the buffer would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    /// Events in the buffer (lines that are UTF-8 and not blank).
    pub events: u64,
    /// Events matching the query (before exceptions).
    pub matched: u64,
    /// Matching events dropped by an exception.
    pub excepted: u64,
    /// The lines that observe terms or were refused, in increasing order.
    pub lines: Vec<ExtractedLine>,
    /// The terms of the observing lines, line after line.
    pub terms: Terms,
}

impl Extraction {
    /// Each line with its terms (none for a refused line). Counts that run past the terms, which
    /// only a broken extraction has ([`Extraction::counts_add_up`]), give the terms there are.
    pub fn lines_with_terms(&self) -> impl Iterator<Item = (&ExtractedLine, LineTerms<'_>)> {
        let mut next: usize = 0;
        self.lines.iter().map(move |line| {
            let count = line
                .outcome
                .as_ref()
                .map_or(0, |observation| observation.terms);
            let start = next;
            next = start.saturating_add(count as usize);
            let end = next.min(self.terms.len());
            let terms = LineTerms {
                terms: &self.terms,
                start: start.min(end),
                end,
            };
            (line, terms)
        })
    }

    /// Whether the observations' counts add up to the terms: every term belongs to one line.
    pub fn counts_add_up(&self) -> bool {
        let counted = self
            .lines
            .iter()
            .filter_map(|line| line.outcome.as_ref().ok())
            .try_fold(0_usize, |sum, observation| {
                sum.checked_add(observation.terms as usize)
            });
        counted == Some(self.terms.len())
    }
}

/// Terms' encodings (each the history's key) end to end, so that a batch's terms are two vectors
/// rather than one per term: crossing into a component, each vector is an allocation there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    /// Where each term ends in `bytes`; the first starts at 0, each other where the one before ends.
    ends: Vec<u32>,
    bytes: Vec<u8>,
}

impl Terms {
    /// Terms from their ends and bytes; `None` unless the ends are in order and within the bytes.
    pub fn from_parts(ends: Vec<u32>, bytes: Vec<u8>) -> Option<Self> {
        let in_order = ends.windows(2).all(|pair| pair[0] <= pair[1]);
        let within = ends.last().is_none_or(|&last| last as usize <= bytes.len());
        (in_order && within).then_some(Self { ends, bytes })
    }

    /// The ends and bytes [`Terms::from_parts`] takes.
    pub fn into_parts(self) -> (Vec<u32>, Vec<u8>) {
        (self.ends, self.bytes)
    }

    /// Adds a term. Terms past 4 GiB in all, which no buffer a component takes can make, are
    /// cut to end there.
    pub fn push(&mut self, term: &[u8]) {
        self.push_joined(&[term]);
    }

    /// Adds the term made of `parts` end to end.
    pub fn push_joined(&mut self, parts: &[&[u8]]) {
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        self.ends
            .push(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX));
    }

    /// How many terms there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of all terms together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Term `index`.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)? as usize;
        let start = match index.checked_sub(1) {
            Some(before) => *self.ends.get(before)? as usize,
            None => 0,
        };
        self.bytes.get(start..end)
    }
}

/// The terms of one line of an [`Extraction`].
#[derive(Debug, Clone, Copy)]
pub struct LineTerms<'a> {
    terms: &'a Terms,
    start: usize,
    end: usize,
}

impl<'a> LineTerms<'a> {
    /// How many there are.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The line's term `index`.
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        if index >= self.len() {
            return None;
        }
        self.terms.get(self.start + index)
    }

    /// The line's terms, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let terms = self.terms;
        (self.start..self.end).filter_map(move |index| terms.get(index))
    }
}

/// The terms of one line that `decide` found new: they raise alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshTerms {
    /// The line, as in [`ExtractedLine::line`].
    pub line: u32,
    /// Indices into the line's terms ([`Extraction::lines_with_terms`]), increasing.
    pub terms: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observing(line: u32, terms: u32) -> ExtractedLine {
        ExtractedLine {
            line,
            outcome: Ok(Observation { time: 0, terms }),
        }
    }

    #[test]
    fn each_line_gets_its_own_run_of_the_terms() {
        let mut extraction = Extraction::default();
        for term in [&b"a"[..], b"", b"bc", b"def"] {
            extraction.terms.push(term);
        }
        extraction.terms.push_joined(&[b"g", b"h"]);
        extraction.lines = vec![
            observing(0, 2),
            ExtractedLine {
                line: 3,
                outcome: Err(LineError::NotUtf8(0)),
            },
            observing(4, 3),
        ];
        assert!(extraction.counts_add_up());
        let runs: Vec<(u32, Vec<&[u8]>)> = extraction
            .lines_with_terms()
            .map(|(line, terms)| (line.line, terms.iter().collect()))
            .collect();
        assert_eq!(
            runs,
            vec![
                (0, vec![&b"a"[..], b""]),
                (3, vec![]),
                (4, vec![&b"bc"[..], b"def", b"gh"]),
            ]
        );
        let (_, last) = extraction
            .lines_with_terms()
            .last()
            .unwrap_or_else(|| panic!("a line"));
        assert_eq!(
            (last.len(), last.get(2), last.get(3)),
            (3, Some(&b"gh"[..]), None)
        );
    }

    #[test]
    fn counts_that_do_not_add_up_are_told_and_read_without_panicking() {
        let mut extraction = Extraction::default();
        extraction.terms.push(b"only");
        extraction.lines = vec![observing(0, 2), observing(1, u32::MAX)];
        assert!(!extraction.counts_add_up());
        let lengths: Vec<usize> = extraction
            .lines_with_terms()
            .map(|(_, terms)| terms.len())
            .collect();
        assert_eq!(lengths, vec![1, 0]);
        extraction.lines = vec![observing(0, 0)];
        assert!(!extraction.counts_add_up(), "a term no line observes");
    }

    #[test]
    fn terms_from_parts_must_be_in_order_and_within_their_bytes() {
        let terms = Terms::from_parts(vec![1, 1, 3], b"abc".to_vec());
        let terms = terms.unwrap_or_else(|| panic!("valid parts"));
        assert_eq!(
            (
                terms.len(),
                terms.get(0),
                terms.get(1),
                terms.get(2),
                terms.get(3)
            ),
            (3, Some(&b"a"[..]), Some(&b""[..]), Some(&b"bc"[..]), None)
        );
        assert_eq!(terms.clone().into_parts(), (vec![1, 1, 3], b"abc".to_vec()));
        assert!(Terms::from_parts(vec![2, 1], b"abc".to_vec()).is_none());
        assert!(Terms::from_parts(vec![4], b"abc".to_vec()).is_none());
        assert!(Terms::from_parts(Vec::new(), Vec::new()).is_some_and(|terms| terms.is_empty()));
    }
}
