//! Gzip inflated on a thread of its own, so that decompression runs beside cutting events (the
//! reader thread) and the rule (the scan's thread) instead of in their way: on the mixed stream,
//! inflating takes longer than cutting the text into events and running the rule together.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

/// Bytes inflated per block handed over.
const BLOCK_BYTES: usize = 1 << 18;

/// Blocks inflated ahead of the reader: enough to ride out a slow batch, little memory (1 MiB).
const BLOCKS_AHEAD: usize = 4;

/// What the inflating thread hands over, the end said explicitly so that a thread that dies is
/// not taken for a stream that ended.
enum Block {
    Data(Vec<u8>),
    End,
    Failed(io::Error),
}

/// The inflated bytes of a source decompressed on its own thread, in order, errors where they
/// occurred. Dropping it ends the thread at its next hand-over (a thread blocked reading a slow
/// standard input is not waited for, as the scan does not wait for its reader).
pub(super) struct Inflating {
    blocks: Receiver<Block>,
    /// Emptied blocks, back to the thread to fill again.
    emptied: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    /// Bytes of `current` already read.
    taken: usize,
    ended: bool,
}

impl Inflating {
    /// Starts inflating `decoder` (a gzip decoder over the raw input) on its own thread.
    pub(super) fn new(decoder: impl Read + Send + 'static) -> io::Result<Self> {
        let (sender, blocks) = sync_channel(BLOCKS_AHEAD);
        let (emptied, to_fill) = sync_channel(BLOCKS_AHEAD + 2);
        thread::Builder::new()
            .name("newterms-inflate".into())
            .spawn(move || inflate(decoder, &sender, &to_fill))?;
        Ok(Self {
            blocks,
            emptied,
            current: Vec::new(),
            taken: 0,
            ended: false,
        })
    }
}

impl Read for Inflating {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.taken == self.current.len() {
            if self.ended || out.is_empty() {
                return Ok(0);
            }
            match self.blocks.recv() {
                Ok(Block::Data(block)) => {
                    let done = std::mem::replace(&mut self.current, block);
                    // A full channel: the thread has enough blocks, this one is freed.
                    let _ = self.emptied.try_send(done);
                    self.taken = 0;
                }
                Ok(Block::End) => {
                    self.ended = true;
                    return Ok(0);
                }
                Ok(Block::Failed(error)) => {
                    self.ended = true;
                    return Err(error);
                }
                Err(_) => {
                    self.ended = true;
                    return Err(io::Error::other("decompression stopped before the end"));
                }
            }
        }
        let available = &self.current[self.taken..];
        let count = available.len().min(out.len());
        out[..count].copy_from_slice(&available[..count]);
        self.taken += count;
        Ok(count)
    }
}

/// The inflating thread: blocks of inflated bytes until the end or an error, each block handed
/// over as soon as one read filled some of it (so that a slow stream's events are not held back).
fn inflate(mut decoder: impl Read, blocks: &SyncSender<Block>, to_fill: &Receiver<Vec<u8>>) {
    loop {
        let mut block = to_fill.try_recv().unwrap_or_default();
        block.resize(BLOCK_BYTES, 0);
        let last = match decoder.read(&mut block) {
            Ok(0) => Block::End,
            Ok(count) => {
                block.truncate(count);
                if blocks.send(Block::Data(block)).is_err() {
                    return; // the reader went away
                }
                continue;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => Block::Failed(error),
        };
        let _ = blocks.send(last);
        return;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    }

    fn inflating(compressed: Vec<u8>) -> Inflating {
        let decoder = flate2::read::MultiGzDecoder::new(io::Cursor::new(compressed));
        Inflating::new(decoder).expect("thread")
    }

    #[test]
    fn yields_every_byte_in_order_across_many_blocks() {
        // Many more blocks than are inflated ahead, so that blocks come back to be filled again,
        // read whole and in pieces of several sizes.
        let text: Vec<u8> = (0..(3 * BLOCKS_AHEAD + 2) * BLOCK_BYTES + 12_345)
            .map(|index| (index % 251) as u8)
            .collect();
        let mut out = Vec::new();
        inflating(gzip(&text))
            .read_to_end(&mut out)
            .expect("inflates");
        assert!(out == text, "{} bytes of {}", out.len(), text.len());
        let mut reader = inflating(gzip(&text));
        let mut out = Vec::new();
        for size in [1, 7, 4096, BLOCK_BYTES - 3, BLOCK_BYTES + 5]
            .into_iter()
            .cycle()
        {
            let mut piece = vec![0; size];
            let read = reader.read(&mut piece).expect("inflates");
            if read == 0 {
                break;
            }
            out.extend_from_slice(&piece[..read]);
        }
        assert!(out == text, "{} bytes of {}", out.len(), text.len());
    }

    #[test]
    fn a_truncated_stream_ends_in_an_error_after_the_bytes_before_it() {
        let text: Vec<u8> = (0..2 * BLOCK_BYTES)
            .map(|index| (index % 7) as u8)
            .collect();
        let mut compressed = gzip(&text);
        compressed.truncate(compressed.len() - 20);
        let mut reader = inflating(compressed);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect_err("truncated");
        assert!(!out.is_empty() && text.starts_with(&out));
        // After the error, the end: nothing invented.
        assert_eq!(reader.read(&mut [0; 16]).expect("ended"), 0);
    }
}
