//! Where snapshots of the first-seen history are kept between runs.

use std::fs::{self, File};
use std::io::{self, Write};
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

/// A snapshot in a file, replaced atomically: written to a temporary file beside it, flushed to disk,
/// renamed over it, and the directory flushed.
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
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));

        let written = (|| {
            let mut file = File::create(&temporary)?;
            file.write_all(snapshot)?;
            file.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&temporary);
            return Err(Error::Io {
                path: temporary,
                source,
            });
        }
        fs::rename(&temporary, &self.path).map_err(self.io_error(&self.path))?;
        // The rename is durable only once the directory entry is.
        File::open(&directory)
            .and_then(|directory| directory.sync_all())
            .map_err(self.io_error(&directory))
    }
}

/// An exclusive claim on a state file, held until dropped: a second process on the same state would
/// overwrite the first one's history, so it is refused instead.
///
/// The lock is taken on `<state>.lock`, not on the state file, because saving replaces the state
/// file. The lock file is left in place: removing it would let two processes lock two different
/// files of the same name.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock for `state`, or fails at once if another process holds it.
    pub fn acquire(state: &Path) -> Result<Self, Error> {
        let path = lock_path(state);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
            Err(fs::TryLockError::Error(source)) => Err(Error::Io { path, source }),
        }
    }
}

/// `<state>.lock`.
pub fn lock_path(state: &Path) -> PathBuf {
    sibling(state, "lock")
}

/// `<state>.<suffix>`, beside the state file.
pub fn sibling(state: &Path, suffix: &str) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
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
