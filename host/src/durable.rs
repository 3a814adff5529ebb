//! Crash safety, in one place: a scan that is killed at any moment and run again ends with exactly the
//! files an uninterrupted run writes.
//!
//! - [`StateLock`]: one process per state file.
//! - [`DurableRun::open`]: takes the lock, loads the checkpoint (`<state>.checkpoint`) and checks that
//!   it belongs to this run; [`DurableRun::history`] is where the rule's history starts.
//! - [`TrackedFile`]: an output file whose length is known at every moment; [`DurableRun::output`]
//!   opens one, cut back to its checkpointed length when resuming.
//! - [`DurableRun::checkpoint`]: the outputs on disk first, then the checkpoint (history, position,
//!   output lengths), replaced atomically.
//! - [`DurableRun::finish`]: the end-of-run order: the state saved, then the checkpoint says the run
//!   ended (over files; removed after a stream), so that the same run again, because the first was
//!   killed while it exited, does nothing ([`DurableRun::completed`]) rather than scan again and
//!   replace the alerts it wrote with none.
//! - [`write_atomically`]: the one routine that replaces a file (state, checkpoint, compiled cache).
//!
//! A library user with its own [`crate::scan::Sink`] gets exactly-once output by writing alerts to
//! [`TrackedFile`]s and calling [`DurableRun::checkpoint`] from [`crate::scan::Sink::checkpoint`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::{Checkpoint, Completion, RunIdentity};
use crate::error::Error;
use crate::input::Position;
use crate::state::{FileStateStore, StateStore};

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never a mix:
/// written to a temporary file beside it, flushed to disk, renamed over it, and the directory
/// flushed (a rename is durable only once the directory entry is).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // Unique per process and call, so that two threads never share a temporary file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let temporary = directory.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    File::open(&directory).and_then(|directory| directory.sync_all())
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
        let file = OpenOptions::new()
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

/// Why a durable run cannot start or go on.
#[derive(Debug)]
pub enum DurableError {
    /// The lock, the state or a file could not be used.
    Rule(Error),
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The checkpoint cannot be read; it is left as it is.
    UnusableCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The checkpoint belongs to another run.
    OtherRun {
        /// The checkpoint file.
        path: PathBuf,
        /// The run it belongs to.
        run: RunIdentity,
    },
    /// An output file is shorter than at the checkpoint: it was changed since.
    Shrunk {
        /// The file.
        path: PathBuf,
        /// Its length now.
        found: u64,
        /// Its length at the checkpoint.
        expected: u64,
    },
}

impl fmt::Display for DurableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableError::Rule(error) => error.fmt(f),
            DurableError::Io { path, .. } => write!(f, "cannot use {}", path.display()),
            DurableError::UnusableCheckpoint { path, why } => write!(
                f,
                "the checkpoint {} is unusable ({why}); it is left as it is (--reset-state discards it)",
                path.display()
            ),
            DurableError::OtherRun { path, run } => write!(
                f,
                "{} holds an interrupted scan of {} with output {}: run that scan again to finish \
                 it, or pass --reset-state to discard it",
                path.display(),
                run.inputs.join(" "),
                run.output.as_deref().unwrap_or("stdout"),
            ),
            DurableError::Shrunk {
                path,
                found,
                expected,
            } => write!(
                f,
                "{} is shorter ({found} bytes) than at the checkpoint ({expected} bytes): it was \
                 changed since, so the scan cannot resume without losing what it held",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DurableError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DurableError::Rule(error) => error.source(),
            DurableError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for DurableError {
    fn from(error: Error) -> Self {
        DurableError::Rule(error)
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> DurableError {
    let path = path.to_owned();
    move |source| DurableError::Io { path, source }
}

/// An output file whose length is known at every moment, so that a checkpoint can record it.
#[derive(Debug)]
pub struct TrackedFile {
    writer: BufWriter<File>,
    len: u64,
}

impl TrackedFile {
    /// Opens `path` for writing at its end, creating it, or emptying it first when `truncate`.
    pub fn open(path: &Path, truncate: bool) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(!truncate)
            .truncate(truncate)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            writer: BufWriter::with_capacity(1 << 16, file),
            len,
        })
    }

    /// Its length, with what is still buffered.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written to it.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Flushed and on disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()
    }
}

impl Write for TrackedFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.writer.write(bytes)?;
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Cuts a file back to the length a checkpoint recorded: what was written after the checkpoint is
/// written again by the resumed scan.
pub fn cut_back(path: &Path, len: u64) -> Result<(), DurableError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound && len == 0 => return Ok(()),
        other => other.map_err(io_at(path))?,
    };
    let found = file.metadata().map_err(io_at(path))?.len();
    if found < len {
        return Err(DurableError::Shrunk {
            path: path.to_owned(),
            found,
            expected: len,
        });
    }
    file.set_len(len)
        .and_then(|()| file.sync_data())
        .map_err(io_at(path))
}

/// The current length of a file that may not exist yet.
fn current_len(path: &Path) -> io::Result<u64> {
    match fs::metadata(path) {
        Ok(metadata) => Ok(metadata.len()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

/// A run's crash safety: its lock, its state and checkpoint files, and what it resumes.
#[derive(Debug)]
pub struct DurableRun {
    _lock: Option<StateLock>,
    state: Option<FileStateStore>,
    checkpoints: Option<FileStateStore>,
    run: RunIdentity,
    resumed: Option<Checkpoint>,
    /// The same scan, of the same unchanged files, already ended.
    completed: bool,
    reset: bool,
}

impl DurableRun {
    /// A run identified by `run`, with its state in `state` (none: a run that keeps nothing, and
    /// resumes nothing). Takes the lock and loads the checkpoint, unless `reset` (start with an
    /// empty history, discarding the checkpoint).
    ///
    /// `completion` is what the run is when its inputs are all files (their fingerprints, the rule
    /// and its configuration): such a run, when it ends, says so in its checkpoint, and the same run
    /// over the same unchanged files then has nothing to do ([`DurableRun::completed`]).
    pub fn open(
        state: Option<&Path>,
        run: RunIdentity,
        completion: Option<&Completion>,
        reset: bool,
    ) -> Result<Self, DurableError> {
        let lock = state.map(StateLock::acquire).transpose()?;
        let checkpoints = state.map(|state| FileStateStore::new(sibling(state, "checkpoint")));
        let last = match &checkpoints {
            Some(store) if !reset => load_checkpoint(store)?,
            _ => None,
        };
        let (resumed, completed) = match last {
            // An ended run: this one is the same run again, or another that starts afresh.
            Some(checkpoint) if checkpoint.completed.is_some() => {
                let same = checkpoint.run == run
                    && completion.is_some()
                    && checkpoint.completed.as_ref() == completion;
                (None, same)
            }
            Some(checkpoint) if checkpoint.run != run => {
                return Err(DurableError::OtherRun {
                    path: checkpoints
                        .map(|store| store.path().to_owned())
                        .unwrap_or_default(),
                    run: checkpoint.run,
                });
            }
            interrupted => (interrupted, false),
        };
        Ok(Self {
            _lock: lock,
            state: state.map(FileStateStore::new),
            checkpoints,
            run,
            resumed,
            completed,
            reset,
        })
    }

    /// This run, over the same unchanged files, already ended: its outputs are whole, its state
    /// saved. It was run again (killed while it exited, say): there is nothing to do, and scanning
    /// again would replace its alerts with none.
    pub fn completed(&self) -> bool {
        self.completed
    }

    /// The checkpoint this run resumes, if any.
    pub fn resumed(&self) -> Option<&Checkpoint> {
        self.resumed.as_ref()
    }

    /// The history the run starts with (none: empty), and the file it comes from.
    pub fn history(&self) -> Result<(Option<Vec<u8>>, Option<&Path>), Error> {
        if let (Some(checkpoint), Some(store)) = (&self.resumed, &self.checkpoints) {
            return Ok((Some(checkpoint.snapshot.clone()), Some(store.path())));
        }
        match &self.state {
            Some(store) if !self.reset => Ok((store.load()?, Some(store.path()))),
            _ => Ok((None, None)),
        }
    }

    /// Whether a checkpoint is kept (the run has a state file).
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// The alert file at `path`: created afresh for a new run, cut back to its checkpointed length
    /// when resuming one.
    pub fn output(&self, path: &Path) -> Result<TrackedFile, DurableError> {
        let resume_len = self.resumed.as_ref().and_then(|c| c.output_len);
        if let Some(len) = resume_len {
            cut_back(path, len)?;
        }
        TrackedFile::open(path, resume_len.is_none()).map_err(io_at(path))
    }

    /// Prepares the dead-letter file at `path` (kept across runs, opened when first needed): cut
    /// back to its checkpointed length when resuming.
    pub fn dead_letters(&self, path: &Path) -> Result<(), DurableError> {
        match self.resumed.as_ref().and_then(|c| c.dead_letter_len) {
            Some(len) => cut_back(path, len),
            None => Ok(()),
        }
    }

    /// Everything before `position` is processed and `snapshot` is the history after it: the
    /// outputs are flushed to disk, then the checkpoint records both with their lengths. The dead
    /// letters' file, when not opened yet, is measured at `dead_letter_path`.
    pub fn checkpoint(
        &self,
        position: Position,
        snapshot: &[u8],
        alerts: Option<&mut TrackedFile>,
        dead_letters: Option<&mut TrackedFile>,
        dead_letter_path: Option<&Path>,
    ) -> io::Result<()> {
        let output_len = match alerts {
            Some(file) => {
                file.sync()?;
                Some(file.len())
            }
            None => None,
        };
        let dead_letter_len = match (dead_letters, dead_letter_path) {
            (Some(file), _) => {
                file.sync()?;
                Some(file.len())
            }
            (None, Some(path)) => Some(current_len(path)?),
            (None, None) => None,
        };
        let Some(store) = &self.checkpoints else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            run: self.run.clone(),
            position,
            output_len,
            dead_letter_len,
            snapshot: snapshot.to_vec(),
            completed: None,
        };
        write_atomically(store.path(), &checkpoint.encode())
    }

    /// The run ended (every input read, or a stream stopped): the state is saved with `history`,
    /// then the checkpoint says so: with a `completion` (inputs that are all files) it records that
    /// the run ended, so that running it again does nothing; otherwise it is removed. Call it with the outputs already on disk and the rule's instance dropped: a run killed
    /// before the checkpoint changes resumes and rewrites nothing, and one killed after it (while it
    /// exits) is found ended.
    pub fn finish(
        self,
        history: Option<&[u8]>,
        completion: Option<Completion>,
    ) -> Result<(), DurableError> {
        if let (Some(store), Some(history)) = (&self.state, history) {
            store.save(history)?;
        }
        let Some(store) = &self.checkpoints else {
            return Ok(());
        };
        match completion {
            Some(completion) => {
                let ended = Checkpoint {
                    run: self.run.clone(),
                    // Past the last input.
                    position: Position {
                        input: self.run.inputs.len(),
                        items: 0,
                    },
                    output_len: None,
                    dead_letter_len: None,
                    snapshot: Vec::new(),
                    completed: Some(completion),
                };
                write_atomically(store.path(), &ended.encode()).map_err(io_at(store.path()))
            }
            None => match fs::remove_file(store.path()) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    Err(io_at(store.path())(error))
                }
                _ => Ok(()),
            },
        }
    }
}

fn load_checkpoint(store: &FileStateStore) -> Result<Option<Checkpoint>, DurableError> {
    let Some(bytes) = store.load()? else {
        return Ok(None);
    };
    Checkpoint::decode(&bytes)
        .map(Some)
        .map_err(|why| DurableError::UnusableCheckpoint {
            path: store.path().to_owned(),
            why,
        })
}
