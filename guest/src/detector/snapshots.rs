//! Snapshots of the history, whole or in pieces, and restores.
//!
//! A snapshot read in pieces walks the live history; the history's generation tells when it
//! changed, which ends the snapshot (no call site has to remember to).

use std::num::NonZeroUsize;

use super::Detector;
use crate::history::History;
use crate::snapshot::{self, Corruption, Decoder, RestoreError, Visit, Writer};

impl Detector {
    /// The history as a snapshot.
    pub fn snapshot(&self) -> Vec<u8> {
        snapshot::encode(
            &self.identity(),
            self.history.evictions(),
            self.history.len(),
            self.history.oldest_first(),
        )
    }

    /// Starts a snapshot to be read in pieces with [`Detector::snapshot_read`] and returns its
    /// length. Any change to the history before the last piece ends it.
    pub fn snapshot_begin(&mut self) -> u64 {
        let writer = Writer::new(&self.identity(), &self.history);
        let length = writer.length();
        self.snapshot_writer = Some((writer, self.history.generation()));
        length
    }

    /// The next at most `max_bytes` bytes of the snapshot begun; empty once all were read, or if
    /// none was begun or the history changed since.
    pub fn snapshot_read(&mut self, max_bytes: usize) -> Vec<u8> {
        let generation = self.history.generation();
        let Some((writer, _)) = self
            .snapshot_writer
            .as_mut()
            .filter(|(_, began)| *began == generation)
        else {
            self.snapshot_writer = None;
            return Vec::new();
        };
        let piece = writer.read(&self.history, max_bytes);
        if piece.is_empty() {
            self.snapshot_writer = None;
        }
        piece
    }

    /// Replaces the history with a snapshot's. On error the history is unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), RestoreError> {
        self.restore_begin(bytes.len() as u64);
        self.restore_write(bytes)?;
        self.restore_end()
    }

    /// Starts a restore from a snapshot of `length` bytes, given in pieces to
    /// [`Detector::restore_write`]; the history is replaced by [`Detector::restore_end`] only if
    /// the whole snapshot reads. A restore already begun is dropped.
    pub fn restore_begin(&mut self, length: u64) {
        let capacity = NonZeroUsize::new(self.capacity() as usize).unwrap_or(NonZeroUsize::MIN);
        let history = History::new(capacity, self.config.hash_key);
        self.restoring = Some((Decoder::new(length), history));
    }

    /// The next piece of the snapshot begun. An error ends the restore; the history is unchanged.
    pub fn restore_write(&mut self, piece: &[u8]) -> Result<(), RestoreError> {
        let Some((mut decoder, mut history)) = self.restoring.take() else {
            return Err(RestoreError::Corrupt(Corruption::NotBegun));
        };
        // Straight from the pieces into the new history.
        decoder.write(piece, Some(&self.identity()), |visit| match visit {
            Visit::Count {
                entries,
                term_bytes,
            } => history.reserve(entries, term_bytes),
            Visit::Entry(term, last_seen) => history.insert(term, last_seen),
        })?;
        self.restoring = Some((decoder, history));
        Ok(())
    }

    /// Ends the restore begun: the history becomes the snapshot's if all of it was written and it
    /// reads; otherwise the history is unchanged.
    pub fn restore_end(&mut self) -> Result<(), RestoreError> {
        let Some((mut decoder, mut history)) = self.restoring.take() else {
            return Err(RestoreError::Corrupt(Corruption::NotBegun));
        };
        let evictions = decoder.finish()?;
        history.add_evictions(evictions);
        self.history.replace(history);
        Ok(())
    }
}
