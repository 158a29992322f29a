//! Streams (database dumps, SQLite pages) backed up as one file, with the metadata a file
//! read from disk would have, so stock restic restores them whole; how a stream cut by
//! content is handed to the workers.

use std::{
    io::Read,
    path::Path,
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, Sender};
use jiff::Timestamp;

use super::{
    archive::{Cutter, Fail, Feed, READ_STEP, read_step},
    pages::{Piece, SPARE_ROOM, Stop},
    stages::{Stage, Stages, Timed},
};

/// The cut bytes a piece gathers before it goes to a worker: a few chunks, or one.
const PIECE_BYTES: usize = 1 << 20;

/// A piece's buffer, allocated at this capacity and kept within it: a piece goes early (with
/// the chunks cut so far) when the next read would grow its buffer past it. The workers hand
/// buffers back at this size ([`SPARE_ROOM`]), one that grew for a long chunk shrunk to it.
/// Left to grow by doubling, most buffers of a PostgreSQL dump (chunks of 2.4 MB on average)
/// outgrew the spares' size and were freed, so nearly every byte of the stream was read into
/// freshly mapped memory: 145-158 k page faults for a 719 MB dump, 39-45 k now, and 8% less
/// CPU (BENCHMARKS.md).
const PIECE_ROOM: usize = SPARE_ROOM;

/// A buffer for the next piece: one handed back, or a new one of [`PIECE_ROOM`].
fn piece_buffer(spare: &Receiver<Vec<u8>>) -> Vec<u8> {
    let mut buf = spare
        .try_recv()
        .unwrap_or_else(|_| Vec::with_capacity(PIECE_ROOM));
    buf.clear();
    buf
}

/// Reads `reader` to its end and cuts it where rustic's chunker does, handing the chunks to
/// the workers in pieces numbered in order, each in a buffer that came back on `spare` (a new
/// one while none has): the bytes are read once into the buffer they are hashed from, and only
/// the part of a chunk read past a piece's end is copied into the next. Returns the length.
/// The cutting counts as `chunk` in `stages`: this thread's time but for its reads (which
/// `reader` counts) and its waits for a worker to take a piece.
pub(super) fn cut_batches<R: Read>(
    cutter: &Cutter,
    reader: &mut Timed<R>,
    tx: &Sender<Piece>,
    spare: &Receiver<Vec<u8>>,
    stages: &Stages,
) -> std::result::Result<u64, Stop> {
    let started = Instant::now();
    let mut feed = Pieces {
        reader,
        cuts: Vec::new(),
        seq: 0,
        tx,
        spare,
        waited: Duration::ZERO,
    };
    let mut buf = piece_buffer(spare);
    let cut = cutter.cut_feed(&mut buf, &mut feed).and_then(|total| {
        if !buf.is_empty() {
            feed.send(buf)?;
        }
        Ok(total)
    });
    let idle = feed.reader.spent() + feed.waited;
    stages.add(Stage::Chunk, started.elapsed().saturating_sub(idle));
    cut.map_err(|e| match e {
        Fail::Source(e) => Stop::Failed(format!("cannot read the source: {e}")),
        Fail::Store(e) => Stop::Failed(e),
        Fail::Stopped => Stop::Stopped,
    })
}

/// A stream being cut into pieces for the workers.
struct Pieces<'a, R> {
    reader: &'a mut Timed<R>,
    /// The lengths of the chunks cut in the buffer so far.
    cuts: Vec<u32>,
    seq: usize,
    tx: &'a Sender<Piece>,
    spare: &'a Receiver<Vec<u8>>,
    /// The time spent waiting for a worker to take a piece.
    waited: Duration,
}

impl<R> Pieces<'_, R> {
    /// Sends `data`, cut into the chunks recorded, as the next piece.
    fn send(&mut self, data: Vec<u8>) -> std::result::Result<(), Fail> {
        let piece = Piece {
            seq: self.seq,
            data,
            cuts: std::mem::take(&mut self.cuts),
        };
        self.seq += 1;
        let started = Instant::now();
        let sent = self.tx.send(piece).map_err(|_| Fail::Stopped);
        self.waited += started.elapsed();
        sent
    }
}

impl<R: Read> Feed for Pieces<'_, R> {
    fn fill(&mut self, buf: &mut Vec<u8>, start: &mut usize) -> std::result::Result<bool, Fail> {
        let full = buf.len() + READ_STEP > buf.capacity().max(PIECE_ROOM);
        if *start >= PIECE_BYTES || (*start > 0 && full) {
            // The chunks cut so far go; what is read past them moves to the next buffer.
            let mut next = piece_buffer(self.spare);
            next.extend_from_slice(&buf[*start..]);
            buf.truncate(*start);
            let full = std::mem::replace(buf, next);
            self.send(full)?;
            *start = 0;
        }
        read_step(self.reader, buf)
    }

    fn chunk(&mut self, chunk: &[u8]) -> std::result::Result<(), Fail> {
        // Chunks are at most the repository's maximum chunk size (a few MiB).
        self.cuts.push(
            u32::try_from(chunk.len()).map_err(|_| Fail::Store("a chunk over 4 GiB".into()))?,
        );
        Ok(())
    }
}

/// The file a stream is stored as.
pub(crate) struct StreamFile<'a> {
    /// Its path in the snapshot.
    pub path: &'a Path,
    /// Its permission bits.
    pub mode: u32,
    /// Its length, when known before reading (for progress).
    pub size: Option<u64>,
}

impl<'a> StreamFile<'a> {
    /// A dump: mode 0600, length unknown.
    pub(crate) fn dump(path: &'a Path) -> Self {
        Self {
            path,
            mode: 0o600,
            size: None,
        }
    }
}

/// The node of a stream stored as a file: complete metadata, as for a file read from disk
/// (stock restic restores a node with no mode as mode 0000), owned by this process's user,
/// modified at `mtime`.
pub(super) fn stream_node(
    name: &std::ffi::OsStr,
    mode: u32,
    mtime: Timestamp,
) -> rustic_core::repofile::Node {
    let meta = rustic_core::repofile::Metadata {
        mode: Some(mode),
        mtime: Some(mtime),
        atime: Some(mtime),
        ctime: Some(mtime),
        uid: Some(rustix::process::getuid().as_raw()),
        gid: Some(rustix::process::getgid().as_raw()),
        links: 1,
        ..Default::default()
    };
    rustic_core::repofile::Node::new_node(name, rustic_core::repofile::NodeType::File, meta)
}
