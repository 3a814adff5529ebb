//! What a face runs: the built-in rule, or rules from rule files run together. A face holds an
//! [`Engine`] and calls it the same way whichever it is, so every face takes rule files with no
//! code of its own for them.

use crate::detector::{
    Config, ConfigError, Detector, EventError, Extraction, Footprint, FreshTerms, LineError,
    LineOutcome, Stats,
};
use crate::rule_pack::{Notice, RulePackDetector};
use crate::snapshot::RestoreError;

/// The built-in rule, or a pack of rules from rule files.
pub enum Engine {
    /// The built-in rule (`Detector`), configured by profile, window and the other keys.
    BuiltIn(Box<Detector>),
    /// Rules from rule files, each with its own history.
    Pack(Box<RulePackDetector>),
}

impl Default for Engine {
    fn default() -> Self {
        Self::BuiltIn(Box::default())
    }
}

impl Engine {
    /// The built-in rule under `config`.
    pub fn built_in(config: Config) -> Result<Self, ConfigError> {
        Detector::new(config).map(|detector| Self::BuiltIn(Box::new(detector)))
    }

    /// The rules of `files` under `config` (see [`RulePackDetector::from_files`]); the message of
    /// the first refusal names its file.
    #[cfg(feature = "rule-toml")]
    pub fn from_files(
        files: &[crate::rule_pack::RuleFile],
        config: Config,
    ) -> Result<Self, String> {
        RulePackDetector::from_files(files, config).map(|pack| Self::Pack(Box::new(pack)))
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        match self {
            Self::BuiltIn(detector) => detector.config(),
            Self::Pack(pack) => pack.config(),
        }
    }

    /// One event (JSON text): the alerts it raises.
    pub fn process(&mut self, text: &str) -> Result<Vec<String>, EventError> {
        match self {
            Self::BuiltIn(detector) => detector.process(text),
            Self::Pack(pack) => pack.process(text),
        }
    }

    /// One event as bytes (not UTF-8 is a line error).
    pub fn process_bytes(&mut self, bytes: &[u8]) -> Result<Vec<String>, LineError> {
        match self {
            Self::BuiltIn(detector) => detector.process_bytes(bytes),
            Self::Pack(pack) => pack.process_bytes(bytes),
        }
    }

    /// Newline-delimited events in order.
    pub fn process_ndjson(&mut self, buffer: &[u8]) -> Vec<LineOutcome> {
        match self {
            Self::BuiltIn(detector) => detector.process_ndjson(buffer),
            Self::Pack(pack) => pack.process_ndjson(buffer),
        }
    }

    /// The stateless stage of [`Engine::process_ndjson`], for hosts that run it on several
    /// instances at once (see `Detector::extract_ndjson`; a pack's terms are staged with their
    /// rule's place, see `RulePackDetector::extract_ndjson`).
    pub fn extract_ndjson(&mut self, buffer: &[u8]) -> Extraction {
        match self {
            Self::BuiltIn(detector) => detector.extract_ndjson(buffer),
            Self::Pack(pack) => pack.extract_ndjson(buffer),
        }
    }

    /// The stateful stage: an extraction applied to the history, in order; the lines whose terms
    /// are new.
    pub fn decide(&mut self, extraction: &Extraction) -> Vec<FreshTerms> {
        match self {
            Self::BuiltIn(detector) => detector.decide(extraction),
            Self::Pack(pack) => pack.decide(extraction),
        }
    }

    /// The alerts of one event for those of its terms (as extracted) that `decide` found new.
    pub fn alerts_for(&self, text: &str, terms: &[Vec<u8>]) -> Result<Vec<String>, EventError> {
        match self {
            Self::BuiltIn(detector) => detector.alerts_for(text, terms),
            Self::Pack(pack) => pack.alerts_for(text, terms),
        }
    }

    /// Counters since the engine was made.
    pub fn stats(&self) -> Stats {
        match self {
            Self::BuiltIn(detector) => detector.stats(),
            Self::Pack(pack) => pack.stats(),
        }
    }

    /// Memory held by the history.
    pub fn footprint(&self) -> Footprint {
        match self {
            Self::BuiltIn(detector) => detector.footprint(),
            Self::Pack(pack) => pack.footprint(),
        }
    }

    /// The history as a snapshot (the built-in rule's format, or the pack's).
    pub fn snapshot(&self) -> Vec<u8> {
        match self {
            Self::BuiltIn(detector) => detector.snapshot(),
            Self::Pack(pack) => pack.snapshot(),
        }
    }

    /// Replaces the history with a snapshot's; a pack says what it did not keep (a rule removed or
    /// changed). On error the history is unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<Vec<Notice>, RestoreError> {
        match self {
            Self::BuiltIn(detector) => detector.restore(bytes).map(|()| Vec::new()),
            Self::Pack(pack) => pack.restore(bytes),
        }
    }

    /// What the last restore did not keep (a pack's rules removed or changed); the built-in rule
    /// keeps or refuses a snapshot whole.
    pub fn notices(&self) -> &[Notice] {
        match self {
            Self::BuiltIn(_) => &[],
            Self::Pack(pack) => pack.notices(),
        }
    }

    /// Starts a snapshot to be read in pieces with [`Engine::snapshot_read`]; returns its length.
    pub fn snapshot_begin(&mut self) -> u64 {
        match self {
            Self::BuiltIn(detector) => detector.snapshot_begin(),
            Self::Pack(pack) => pack.snapshot_begin(),
        }
    }

    /// The next at most `max_bytes` bytes of the snapshot begun; empty at its end.
    pub fn snapshot_read(&mut self, max_bytes: usize) -> Vec<u8> {
        match self {
            Self::BuiltIn(detector) => detector.snapshot_read(max_bytes),
            Self::Pack(pack) => pack.snapshot_read(max_bytes),
        }
    }

    /// Starts a restore of `length` bytes given in pieces to [`Engine::restore_write`].
    pub fn restore_begin(&mut self, length: u64) {
        match self {
            Self::BuiltIn(detector) => detector.restore_begin(length),
            Self::Pack(pack) => pack.restore_begin(length),
        }
    }

    /// The next piece of the restore begun. An error ends it; the history is unchanged.
    pub fn restore_write(&mut self, piece: &[u8]) -> Result<(), RestoreError> {
        match self {
            Self::BuiltIn(detector) => detector.restore_write(piece),
            Self::Pack(pack) => pack.restore_write(piece),
        }
    }

    /// Ends the restore begun: as [`Engine::restore`] of all its pieces.
    pub fn restore_end(&mut self) -> Result<(), RestoreError> {
        match self {
            Self::BuiltIn(detector) => detector.restore_end(),
            Self::Pack(pack) => pack.restore_end(),
        }
    }
}
