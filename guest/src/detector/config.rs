//! How a detector is configured, and which configurations are refused.

use std::num::NonZeroUsize;

use crate::definition::Profile;
use crate::fields::Fields;

/// History capacity when the configuration names none.
pub const DEFAULT_CAPACITY: u32 = 1_000_000;

/// How the rule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Which reading of the rule.
    pub profile: Profile,
    /// Window override in milliseconds.
    pub window_ms: Option<u64>,
    /// Exceptions: matching events neither alert nor count.
    pub exceptions: Vec<Exception>,
    /// History capacity; `None` for [`DEFAULT_CAPACITY`].
    pub capacity: Option<u32>,
    /// Build history without raising alerts.
    pub learn: bool,
    /// Key for hashing term values.
    pub hash_key: (u64, u64),
    /// This instance's share of the terms, when an engine spreads a stream over several: it keeps
    /// and alerts on only the terms in bucket `index` of `count` (see [`super::bucket_of`]).
    pub partition: Option<Partition>,
}

/// Bucket `index` of `count` (the contract's type, which the host speaks too).
pub use newterms_contract::outcome::Partition;

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: Profile::Default,
            window_ms: None,
            exceptions: Vec::new(),
            capacity: None,
            learn: false,
            hash_key: (0, 0),
            partition: None,
        }
    }
}

/// Events with a value of `field` matching one of `patterns` are dropped after the query (the
/// contract's type, which the host speaks too).
pub use newterms_contract::outcome::Exception;

/// Why a configuration was refused (the contract's type, which the host speaks too).
pub use newterms_contract::outcome::ConfigError;

impl Config {
    /// The history capacity in force.
    pub fn capacity(&self) -> u32 {
        self.capacity.unwrap_or(DEFAULT_CAPACITY)
    }

    /// Checks the configuration; the capacity it gives the history.
    pub(crate) fn validate(&self) -> Result<NonZeroUsize, ConfigError> {
        let capacity =
            NonZeroUsize::new(self.capacity() as usize).ok_or(ConfigError::ZeroCapacity)?;
        if self.window_ms == Some(0) {
            return Err(ConfigError::InvalidWindow(0));
        }
        if let Some(Partition { index, count }) = self.partition
            && index >= count
        {
            return Err(ConfigError::InvalidPartition { index, count });
        }
        for exception in &self.exceptions {
            if exception.field.is_empty() {
                return Err(ConfigError::InvalidException(
                    "an exception names no field".into(),
                ));
            }
            if exception.patterns.is_empty() {
                return Err(ConfigError::InvalidException(format!(
                    "the exception on {} has no values",
                    exception.field
                )));
            }
        }
        Ok(capacity)
    }
}

/// Whether a value of an exception's field in the event `ecs` matches one of its patterns: the
/// event then neither alerts nor counts as history (the built-in rule's and every pack rule's).
pub(crate) fn excepted(exceptions: &[Exception], ecs: &(impl Fields + ?Sized)) -> bool {
    exceptions.iter().any(|exception| {
        ecs.values_of(&exception.field).iter().any(|value| {
            exception
                .patterns
                .iter()
                .any(|pattern| crate::wildcard::matches(pattern, value))
        })
    })
}
