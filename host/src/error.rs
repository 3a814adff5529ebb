//! The host library's errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::types::{ConfigError, RestoreError};

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
    /// The guest trapped or failed during a call; its instance must not be used again.
    Guest {
        /// Which call.
        call: &'static str,
        /// wasmtime's reason (a trap, or a resource limit).
        source: wasmtime::Error,
    },
    /// The component refused the configuration.
    Config(ConfigError),
    /// The component refused a snapshot.
    Restore(RestoreError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, .. } => write!(f, "{}", path.display()),
            Error::Engine(_) => f.write_str("cannot create the WebAssembly engine"),
            Error::Compile { origin, .. } => write!(f, "cannot compile the component {origin}"),
            Error::Incompatible { origin, .. } => {
                write!(
                    f,
                    "{origin} is not a newterms:rule component this host can run"
                )
            }
            Error::Guest { call, .. } => write!(f, "the rule component failed in {call}"),
            Error::Config(error) => write!(f, "the rule refused its configuration: {error}"),
            Error::Restore(error) => write!(f, "the rule refused the saved state: {error}"),
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
            Error::Config(_) | Error::Restore(_) => None,
        }
    }
}
