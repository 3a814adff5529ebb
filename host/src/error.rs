//! The host library's errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::types::{ConfigError, RestoreError};

/// How a call into the guest failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// It trapped: a bug or a hostile component (a Rust guest's panic is a trap).
    Trap,
    /// It ran past its CPU deadline.
    CpuDeadline(std::time::Duration),
    /// It asked for more memory than its limit.
    MemoryLimit(usize),
    /// It answered something the contract does not allow.
    Malformed(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Trap => f.write_str("it trapped"),
            Fault::CpuDeadline(deadline) => {
                write!(
                    f,
                    "it ran past its CPU deadline of {} ms",
                    deadline.as_millis()
                )
            }
            Fault::MemoryLimit(bytes) => {
                write!(f, "it exceeded its memory limit of {} MiB", bytes >> 20)
            }
            Fault::Malformed(what) => write!(f, "it broke the contract: {what}"),
        }
    }
}

/// Everything that can go wrong in the host library.
#[derive(Debug)]
pub enum Error {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// Another process holds the lock on this state.
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The WebAssembly engine could not be created with these settings.
    Engine(wasmtime::Error),
    /// The bytes are not a component this engine can compile.
    Compile {
        /// Where the bytes came from.
        origin: String,
        /// wasmtime's reason.
        source: wasmtime::Error,
    },
    /// The component cannot be instantiated as a `newterms:rule` rule: it imports something, or does
    /// not export the interface this host speaks.
    Incompatible {
        /// Where the component came from.
        origin: String,
        /// wasmtime's reason.
        source: wasmtime::Error,
    },
    /// The guest failed during a call; its instance must not be used again.
    Guest {
        /// Which call.
        call: &'static str,
        /// What went wrong.
        fault: Fault,
        /// wasmtime's reason.
        source: wasmtime::Error,
    },
    /// The component refused the configuration.
    Config(ConfigError),
    /// The component refused a snapshot.
    Restore(RestoreError),
    /// The component refused a rule file (the message names it).
    Rules(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, .. } => write!(f, "{}", path.display()),
            Error::Engine(_) => f.write_str("cannot create the WebAssembly engine"),
            Error::Locked { path } => write!(
                f,
                "another newterms process is using this state (it holds {})",
                path.display()
            ),
            Error::Compile { origin, .. } => write!(f, "cannot compile the component {origin}"),
            Error::Incompatible { origin, .. } => {
                write!(
                    f,
                    "{origin} is not a newterms:rule component this host can run"
                )
            }
            Error::Guest { call, fault, .. } => {
                write!(f, "the rule component failed in {call}: {fault}")
            }
            Error::Config(error) => write!(f, "the rule refused its configuration: {error}"),
            Error::Restore(error) => write!(f, "the rule refused the saved state: {error}"),
            Error::Rules(message) => write!(f, "rule file {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Engine(source) => Some(source.as_ref()),
            Error::Compile { source, .. }
            | Error::Incompatible { source, .. }
            | Error::Guest { source, .. } => Some(source.as_ref()),
            Error::Config(_) | Error::Restore(_) | Error::Rules(_) | Error::Locked { .. } => None,
        }
    }
}
