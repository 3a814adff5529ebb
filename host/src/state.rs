//! Where snapshots of the first-seen history are kept between runs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::Error;

/// Keeps one snapshot.
pub trait StateStore {
    /// The stored snapshot, or `None` when nothing was stored yet.
    fn load(&self) -> Result<Option<Vec<u8>>, Error>;
    /// Replaces the stored snapshot. Either the old or the new one survives a crash, never a mix.
    fn save(&self, snapshot: &[u8]) -> Result<(), Error>;
}

/// A snapshot in a file, replaced atomically ([`crate::durable::write_atomically`]).
#[derive(Debug, Clone)]
pub struct FileStateStore {
    path: PathBuf,
}

impl FileStateStore {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    }
}

impl StateStore for FileStateStore {
    fn load(&self) -> Result<Option<Vec<u8>>, Error> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn save(&self, snapshot: &[u8]) -> Result<(), Error> {
        crate::durable::write_atomically(&self.path, snapshot).map_err(self.io_error(&self.path))
    }
}

/// A snapshot in memory: for tests, and for hosts that persist state their own way.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    snapshot: Mutex<Option<Vec<u8>>>,
}

impl StateStore for MemoryStateStore {
    fn load(&self) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .snapshot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone())
    }

    fn save(&self, snapshot: &[u8]) -> Result<(), Error> {
        *self
            .snapshot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(snapshot.to_vec());
        Ok(())
    }
}
