//! Streams (SQLite pages, database dumps) packed by our own pipeline, in restic's format.
//!
//! rustic_core's archiver pays a zstd context and several thread hand-offs per blob; at one
//! 4 KiB page per blob that costs more than the work itself (BENCHMARKS.md), and rustic_core
//! has no public API to add blobs. It also allocates new buffers for every chunk of a dump
//! (its data, compressed and encrypted copies), each a fresh mapping under the mmap threshold
//! runbook holds. So a stream is read here into reused buffers, cut into chunks (the
//! repository's fixed size, or where rustic's content-defined chunker cuts:
//! [`super::archive`]), and hashed, compressed (one zstd context per thread), encrypted and
//! read back (rustic's `extra_verify`) in batches on every core, then packed and written here,
//! with the repository's own key, chunk size, compression level and pack size, and
//! rustic_core's public types for the tree and snapshot. Stock restic and rustic read what this
//! writes; the SQLite and dump tests restore it with restic.
//!
//! Writes come in restic's order: packs, then the index naming them, then the snapshot. A
//! backup stopped anywhere leaves at most packs that no index names (`prune` removes them) and
//! every earlier snapshot as it was.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    io::Read,
    path::{Component, Path},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use crossbeam_channel::{Receiver, Sender, bounded};
use jiff::{Timestamp, Zoned, tz::TimeZone};
use rustic_core::{
    DataId, FileType, Id, SnapshotOptions, WriteBackend,
    repofile::{
        BlobType, Chunker, Metadata, Node, NodeType, SnapshotFile, SnapshotId, SnapshotSummary,
        Tree,
    },
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Repo, StreamFile,
    archive::Cutter,
    describe, guard,
    seal::Seal,
    spill::Spill,
    stages::{Stage, Stages, Timed},
    stream::{cut_batches, stream_node},
};
use crate::{
    Result,
    snapshot::{Meta, Snapshot},
};

/// A snapshot's description: its runbook metadata as JSON.
pub(super) fn describe_meta(meta: &Meta) -> Option<String> {
    serde_json::to_string(meta).ok()
}

/// A blob's or file's id: the SHA-256 of its plain content (blobs) or stored bytes (files).
pub(super) type Hash = [u8; 32];

/// The largest pack this pipeline writes (restic's default size).
const MAX_PACK: u64 = 16 << 20;

/// The blobs one index file names at most, as restic and rustic write them (a few in unit
/// tests, so that every backup there writes several index files).
#[cfg(not(test))]
const INDEX_BLOBS: usize = 50_000;
#[cfg(test)]
const INDEX_BLOBS: usize = 16;

/// Pages handed to a worker at once: few hand-offs, and a batch still fits in a core's cache.
const BATCH_PAGES: usize = 256;

pub(super) fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

impl Repo {
    /// Backs up `reader` (a SQLite database's pages, a database dump) as the file
    /// `file.path`, cut into chunks as the repository says: of its fixed chunk size, or where
    /// rustic's content-defined chunker cuts ([`Cutter`]). The reader may abort the backup by
    /// unwinding with `StreamFailed`; then no index or snapshot is written.
    pub(crate) fn backup_stream(
        self,
        reader: impl Read,
        file: StreamFile<'_>,
        meta: Meta,
        time: Option<Timestamp>,
    ) -> Result<Snapshot> {
        let config = self.inner.config();
        let cut = match config.chunker() {
            Chunker::FixedSize => Cut::Fixed(config.chunk_size().max(1)),
            Chunker::Rabin => {
                Cut::Content(Box::new(Cutter::new(config).map_err(self.fail("backup"))?))
            }
        };
        let target = self.target.clone();
        guard(&target, "backup", move || {
            self.stream_inner(reader, &cut, &file, &meta, time)
        })
    }

    /// rustic's pack size for this repository, but at most restic's default: a pack is held
    /// whole in memory until it is written, and three are in flight.
    pub(super) fn pack_size<D>(&self, known: &Index<D>) -> u64 {
        let (size, grow, limit) = self.inner.config().packsize(BlobType::Data);
        (known.data_bytes.isqrt() * u64::from(grow) + u64::from(size))
            .min(u64::from(limit))
            .min(MAX_PACK)
    }

    /// A snapshot of this target taken at `time` (`None`: now), labelled, described and
    /// tagged as every runbook snapshot is; its tree and paths are the caller's.
    pub(super) fn new_snapshot(
        &self,
        meta: &Meta,
        time: Option<Timestamp>,
    ) -> Result<SnapshotFile> {
        let mut opts = SnapshotOptions::default()
            .label(self.target.clone())
            .description(describe_meta(meta));
        if let Some(t) = time {
            opts = opts.time(Some(t.to_zoned(TimeZone::UTC)));
        }
        opts.add_tags(&super::snapshot_tags(meta))
            .and_then(|o| o.to_snapshot())
            .map_err(self.err("backup"))
    }

    /// What a backup through this pipeline needs from the repository, read once.
    pub(super) fn store(&self) -> Result<Store<'_>> {
        let started = Instant::now();
        let fail = self.fail("backup");
        let config = self.inner.config();
        let level = config.zstd().map_err(self.err("backup"))?;
        let seal = Seal::new(&self.inner.key()).map_err(fail)?;
        let be: &dyn WriteBackend = &*self.backend;
        let known = Index::read(be, &seal).map_err(fail)?;
        let pack_size = self.pack_size(&known);
        Ok(Store {
            be,
            local: self.local.as_deref(),
            seal,
            known,
            level,
            pack_size,
            verify: config.extra_verify(),
            started,
            stages: Stages::default(),
        })
    }

    fn stream_inner(
        self,
        reader: impl Read,
        cut: &Cut,
        file: &StreamFile<'_>,
        meta: &Meta,
        time: Option<Timestamp>,
    ) -> Result<Snapshot> {
        let fail = self.fail("backup");
        let store = self.store()?;
        let mut cx = store.cx();
        let progress = self.inner.progress_bytes("backing up…");
        if let Some(size) = file.size {
            progress.set_length(size);
        }
        let store_start = Zoned::now();
        let store_started = Instant::now();
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let mut reader = Timed::new(reader);

        let (read, workers, packed) = std::thread::scope(|s| {
            let (work_tx, work_rx) = bounded::<Piece>(threads * 2);
            let (done_tx, done_rx) = bounded::<Result<Batch, String>>(threads * 2);
            // Hashed batches' buffers go back to the reader: every batch in flight, and one
            // being read, reuses a buffer instead of allocating and faulting in a new one.
            let (spare_tx, spare_rx) = bounded::<Vec<u8>>(threads * 3 + 1);
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (rx, tx, spare, cx) =
                        (work_rx.clone(), done_tx.clone(), spare_tx.clone(), &cx);
                    s.spawn(move || cx.work(cut, &rx, &tx, &spare))
                })
                .collect();
            drop((work_rx, done_tx, spare_tx));
            let packer = store.spawn_packer(s, done_rx, &progress);
            let read = match cut {
                Cut::Fixed(chunk) => {
                    read_batches(&mut reader, chunk * BATCH_PAGES, &work_tx, &spare_rx)
                }
                Cut::Content(cutter) => {
                    cut_batches(cutter, &mut reader, &work_tx, &spare_rx, &store.stages)
                }
            };
            store.stages.add(Stage::Source, reader.spent());
            drop(work_tx);
            let joined = |h: std::thread::ScopedJoinHandle<'_, _>| {
                h.join()
                    .unwrap_or_else(|_| Err(Stop::Failed("a backup thread failed".into())))
            };
            let workers: Vec<_> = workers.into_iter().map(joined).collect();
            let packed = packer
                .join()
                .unwrap_or_else(|_| Err("the packer thread failed".into()));
            (read, workers, packed)
        });
        // The first cause, not the peers that stopped because of it: storage and packing
        // (which carries a worker's failure), a worker that panicked, then reading the source.
        let Packed {
            mut packs,
            content,
            mut added,
            ..
        } = packed.map_err(fail)?;
        for w in workers {
            if let Err(Stop::Failed(e)) = w {
                return Err(fail(e));
            }
        }
        let total = match read {
            Ok(total) => total,
            Err(Stop::Failed(e)) => return Err(fail(e)),
            Err(Stop::Stopped) => return Err(fail("the backup stopped".into())),
        };
        // The ids of the pages this backup stored (one per page of a first backup) are not
        // needed for the trees: freed before those are built.
        *cx.fresh
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = HashSet::default();
        let content: Vec<DataId> = content
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail("a batch of pages went missing".into()))?
            .into_iter()
            .flatten()
            .map(|h| DataId::from(Id::new(h)))
            .collect();

        // The tree: the file's node, inside one directory node per component of its path.
        let name = file
            .path
            .file_name()
            .ok_or_else(|| fail(format!("{} has no file name", file.path.display())))?;
        let mut node = stream_node(name, file.mode, time.unwrap_or_else(Timestamp::now));
        node.meta.size = total;
        node.content = Some(content);
        let mut saver = TreeSaver::new(&store, &cx).map_err(fail)?;
        let (root, dirs) = save_trees(file.path, node, &mut saver).map_err(fail)?;
        saver.finish(&mut packs, &mut added).map_err(fail)?;
        store.save_index(packs).map_err(fail)?;

        // The snapshot, last: from here on the backup exists.
        let mut snap = self.new_snapshot(&store.with_stages(meta), time)?;
        snap.tree = Id::new(root).into();
        snap.paths.add(file.path.to_string_lossy().into_owned());
        let mut summary = snap.summary.take().unwrap_or_default();
        summary.files_new = 1;
        summary.total_files_processed = 1;
        summary.total_bytes_processed = total;
        summary.dirs_new = dirs;
        summary.total_dirs_processed = dirs;
        store.summarize(&mut summary, &added, store_start, store_started);
        snap.summary = Some(summary);
        store.save_snapshot(&mut snap).map_err(fail)?;
        progress.finish();
        Ok(describe(&self.target, &snap))
    }
}

/// A backup through runbook's own pipeline: the repository's storage, key, index, compression
/// level and pack size, and when the backup began.
pub(super) struct Store<'r> {
    pub(super) be: &'r dyn WriteBackend,
    /// The repository's directory, when it is local: data packs are filled in files there.
    local: Option<&'r Path>,
    pub(super) seal: Seal,
    pub(super) known: Index<()>,
    level: Option<i32>,
    pack_size: u64,
    verify: bool,
    started: Instant,
    /// Where the storing's time goes.
    pub(super) stages: Stages,
}

impl<'r> Store<'r> {
    /// What the workers share.
    pub(super) fn cx(&self) -> Cx<'_> {
        Cx {
            seal: &self.seal,
            level: self.level,
            verify: self.verify,
            known: &self.known,
            fresh: Mutex::default(),
            stages: &self.stages,
        }
    }

    /// Spawns the packer, which fills packs with the sealed blobs of `batches` until it is
    /// closed, and the writer, which stores each full pack and an index file for every
    /// [`INDEX_BLOBS`] blobs written. The handle yields the packs written that no index file
    /// names yet, the last one included, or the first failure (storage before packing, as the
    /// packer stops because storage failed).
    pub(super) fn spawn_packer<'scope, 'env>(
        &'env self,
        s: &'scope std::thread::Scope<'scope, 'env>,
        batches: Receiver<std::result::Result<Batch, String>>,
        progress: &'env rustic_core::Progress,
    ) -> std::thread::ScopedJoinHandle<'scope, std::result::Result<Packed, String>>
    where
        'r: 'env,
    {
        let (out_tx, out_rx) = bounded::<(Hash, Stored, PackJson)>(0);
        let writer = s.spawn(move || -> std::result::Result<Vec<PackJson>, String> {
            let mut packs = Vec::new();
            for (id, stored, entry) in out_rx {
                self.stages
                    .time(Stage::Upload, || stored.save(self.be, id))?;
                packs.push(entry);
                // As restic and rustic do: an index file once its packs hold enough blobs,
                // so neither this backup nor a reader of the index holds one huge file.
                if packs.iter().map(|p| p.blobs.len()).sum::<usize>() >= INDEX_BLOBS {
                    self.save_index(std::mem::take(&mut packs))?;
                }
            }
            Ok(packs)
        });
        s.spawn(move || {
            let packed = pack(&batches, &out_tx, self, progress);
            drop(out_tx);
            let written = writer
                .join()
                .unwrap_or_else(|_| Err("the writer thread failed".into()))?;
            let mut packed = match packed {
                Ok(p) => p,
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Stopped) => return Err("the backup stopped".into()),
            };
            packed.packs = written;
            let last = std::mem::take(&mut packed.pack);
            if !last.is_empty() {
                let (id, stored, entry) = last.finish(&self.seal, BlobType::Data, &self.stages)?;
                self.stages
                    .time(Stage::Upload, || stored.save(self.be, id))?;
                packed.packs.push(entry);
            }
            Ok(packed)
        })
    }

    /// `meta` with the seconds of this backup's stages so far.
    pub(super) fn with_stages(&self, meta: &Meta) -> Meta {
        Meta {
            stages: self.stages.seconds(),
            ..meta.clone()
        }
    }

    /// Records in `summary` what the backup added, and when its storing began and ended.
    pub(super) fn summarize(
        &self,
        summary: &mut SnapshotSummary,
        added: &Added,
        store_start: Zoned,
        store_started: Instant,
    ) {
        summary.command = "backup".into();
        summary.data_blobs = added.data_blobs;
        summary.tree_blobs = added.tree_blobs;
        summary.data_added_files = added.data_raw;
        summary.data_added_files_packed = added.data_packed;
        summary.data_added_trees = added.trees_raw;
        summary.data_added_trees_packed = added.trees_packed;
        summary.data_added = added.data_raw + added.trees_raw;
        summary.data_added_packed = added.data_packed + added.trees_packed;
        summary.backup_start = store_start;
        summary.backup_end = Zoned::now();
        summary.backup_duration = store_started.elapsed().as_secs_f64();
        summary.total_duration = self.started.elapsed().as_secs_f64();
    }

    /// Saves the index naming `packs` (nothing when there are none).
    pub(super) fn save_index(&self, packs: Vec<PackJson>) -> std::result::Result<(), String> {
        if packs.is_empty() {
            return Ok(());
        }
        let index = serde_json::to_vec(&IndexJson { packs }).map_err(|e| e.to_string())?;
        self.stages.time(Stage::Upload, || {
            save_file(self.be, &self.seal, self.level, FileType::Index, &index)
        })?;
        Ok(())
    }

    /// Saves `snap` and sets its id: the last write of a backup, after the packs and the
    /// index it needs.
    pub(super) fn save_snapshot(&self, snap: &mut SnapshotFile) -> std::result::Result<(), String> {
        snap.id = SnapshotId::default();
        let json = serde_json::to_vec(&*snap).map_err(|e| e.to_string())?;
        let id = save_file(self.be, &self.seal, self.level, FileType::Snapshot, &json)?;
        snap.id = Id::new(id).into();
        Ok(())
    }
}

/// Why a stage of the pipeline stopped.
pub(super) enum Stop {
    /// It failed, for this reason.
    Failed(String),
    /// A peer stopped first (its reason is reported instead).
    Stopped,
}

/// How a stream is cut into chunks.
pub(super) enum Cut {
    /// Every so many bytes (SQLite pages).
    Fixed(usize),
    /// Where rustic's content-defined chunker cuts (its tables are 4 KiB).
    Content(Box<Cutter>),
}

/// A stretch of the stream for a worker: its place in the stream, its bytes, and the lengths
/// of its chunks (none: chunks of the fixed size).
pub(super) struct Piece {
    pub(super) seq: usize,
    pub(super) data: Vec<u8>,
    pub(super) cuts: Vec<u32>,
}

/// Reads `reader` to its end in batches of `len` bytes, numbered in order, into the buffers
/// that come back on `spare` (new ones while none has come back).
fn read_batches(
    reader: &mut impl Read,
    len: usize,
    tx: &Sender<Piece>,
    spare: &Receiver<Vec<u8>>,
) -> std::result::Result<u64, Stop> {
    let mut total = 0_u64;
    for seq in 0.. {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(len, 0);
        let mut filled = 0;
        while filled < len {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Stop::Failed(format!("cannot read the source: {e}"))),
            }
        }
        if filled == 0 {
            break;
        }
        buf.truncate(filled);
        total += filled as u64;
        let piece = Piece {
            seq,
            data: buf,
            cuts: Vec::new(),
        };
        tx.send(piece).map_err(|_| Stop::Stopped)?;
        if filled < len {
            break;
        }
    }
    Ok(total)
}

/// What every worker shares.
pub(super) struct Cx<'a> {
    pub(super) seal: &'a Seal,
    pub(super) level: Option<i32>,
    pub(super) verify: bool,
    pub(super) known: &'a Index<()>,
    /// Data blobs this backup has already packed (a page that repeats is stored once).
    pub(super) fresh: Mutex<HashSet<Hash, std::hash::BuildHasherDefault<IdHasher>>>,
    pub(super) stages: &'a Stages,
}

impl Cx<'_> {
    pub(super) fn blobber(&self) -> std::result::Result<Blobber<'_>, String> {
        let io = |e: std::io::Error| format!("cannot set up compression: {e}");
        Ok(Blobber {
            seal: self.seal,
            level: self.level,
            compress: self
                .level
                .map(zstd::bulk::Compressor::new)
                .transpose()
                .map_err(io)?,
            verify: if self.verify {
                Some(Verifier::new().map_err(io)?)
            } else {
                None
            },
            compressed: Vec::new(),
            plain: Vec::new(),
        })
    }

    /// One worker: hashes each chunk of each piece, and seals the chunks the repository
    /// lacks; each piece's buffer then goes back to the reader through `spare`.
    fn work(
        &self,
        cut: &Cut,
        rx: &Receiver<Piece>,
        tx: &Sender<std::result::Result<Batch, String>>,
        spare: &Sender<Vec<u8>>,
    ) -> std::result::Result<(), Stop> {
        let mut blobber = match self.blobber() {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(e));
                return Ok(());
            }
        };
        // Pieces cut by content carry their chunks' lengths.
        let fixed = match cut {
            Cut::Fixed(chunk) => *chunk,
            Cut::Content(_) => usize::MAX,
        };
        for Piece { seq, data, cuts } in rx {
            let started = Instant::now();
            let mut batch = Batch {
                seq: Some(seq),
                bytes: data.len() as u64,
                ids: Vec::with_capacity(cuts.len().max(data.len().div_ceil(fixed))),
                new: Vec::new(),
            };
            let mut rest = &data[..];
            let mut cuts = cuts.iter();
            while !rest.is_empty() {
                let len = cuts.next().map_or(fixed, |&c| c as usize).min(rest.len());
                let (page, tail) = rest.split_at(len);
                rest = tail;
                let id = sha256(page);
                batch.ids.push(id);
                if self.known.data.contains_key(&id)
                    || !self
                        .fresh
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(id)
                {
                    continue;
                }
                match blobber.blob(id, page) {
                    Ok(sealed) => batch.new.push(sealed),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return Ok(());
                    }
                }
            }
            self.stages.add(Stage::Chunk, started.elapsed());
            // Full when the reader holds enough spares: this one is freed instead. A buffer
            // that grew for a long chunk goes back shrunk to the spares' size: kept whole, its
            // pages would stay in memory (a PostgreSQL backup peaked at 53-99 MiB with them;
            // 47-59 shrunk); freed, the reader would fault its next buffer in afresh.
            let mut data = data;
            if data.capacity() > SPARE_ROOM {
                data.clear();
                data.shrink_to(SPARE_ROOM);
            }
            let _ = spare.try_send(data);
            tx.send(Ok(batch)).map_err(|_| Stop::Stopped)?;
        }
        Ok(())
    }
}

/// The largest buffer a worker hands back for reuse.
pub(super) const SPARE_ROOM: usize = 4 << 20;

/// A batch of pages, hashed, with the ones to store sealed.
#[derive(Default)]
pub(super) struct Batch {
    /// Its place in the stream, when its ids make up the stream's content in order.
    pub(super) seq: Option<usize>,
    pub(super) bytes: u64,
    pub(super) ids: Vec<Hash>,
    pub(super) new: Vec<Sealed>,
}

/// One blob as stored in a pack: compressed (when the repository compresses) and encrypted.
pub(super) struct Sealed {
    id: Hash,
    pub(super) data: Vec<u8>,
    /// Its plain length.
    raw: u32,
    compressed: bool,
}

/// One thread's compression contexts and scratch buffers: made once, used for every blob
/// (a chunk of a dump is 0.5-8 MiB: new buffers for each would be new mappings, faulted in
/// page by page).
pub(super) struct Blobber<'a> {
    seal: &'a Seal,
    /// The repository's zstd level; `None` when it does not compress.
    level: Option<i32>,
    compress: Option<zstd::bulk::Compressor<'static>>,
    /// Decompresses each sealed blob back for comparison (rustic's `extra_verify`).
    verify: Option<Verifier>,
    /// The blob compressed, before it is sealed.
    compressed: Vec<u8>,
    /// The sealed blob opened again (verification).
    plain: Vec<u8>,
}

/// Decompresses a sealed blob back and compares it with what was stored: a small blob whole,
/// a large one (a dump's chunk, up to 8 MiB) in windows of [`Verifier::WINDOW`] bytes, so no
/// worker holds a second copy of a whole chunk (two workers' 8 MiB copies were most of the
/// difference between a PostgreSQL backup's peak RSS and restic's).
pub(super) struct Verifier {
    whole: zstd::bulk::Decompressor<'static>,
    stream: zstd::stream::raw::Decoder<'static>,
    back: Vec<u8>,
}

impl Verifier {
    /// Blobs up to this size are decompressed whole; the window for larger ones.
    const WINDOW: usize = 256 << 10;

    fn new() -> std::io::Result<Self> {
        Ok(Self {
            whole: zstd::bulk::Decompressor::new()?,
            stream: zstd::stream::raw::Decoder::new()?,
            back: Vec::new(),
        })
    }

    /// The hash and length of what `compressed` decompresses to, read in windows.
    fn digest(&mut self, compressed: &[u8]) -> std::result::Result<(Hash, u64), String> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let broken = |e: std::io::Error| format!("cannot decompress what was just compressed: {e}");
        self.stream.reinit().map_err(broken)?;
        self.back.resize(Self::WINDOW, 0);
        let mut input = InBuffer::around(compressed);
        let mut sink = HashSink::default();
        loop {
            let mut out = OutBuffer::around(self.back.as_mut_slice());
            let left = self.stream.run(&mut input, &mut out).map_err(broken)?;
            let n = out.pos();
            std::io::Write::write_all(&mut sink, &self.back[..n]).map_err(broken)?;
            // As in `same`: 0 is a complete frame; no output from input all consumed, a cut one.
            if left == 0 || (n == 0 && input.pos() == compressed.len()) {
                if left != 0 || input.pos() != compressed.len() {
                    return Err(
                        "cannot decompress what was just compressed: it is cut short".into(),
                    );
                }
                return Ok((sink.hasher.finalize().into(), sink.len));
            }
        }
    }

    /// Whether `compressed` decompresses to exactly `raw`.
    fn same(&mut self, compressed: &[u8], raw: &[u8]) -> std::result::Result<bool, String> {
        let broken = |e: std::io::Error| format!("cannot decompress what was just compressed: {e}");
        if raw.len() <= Self::WINDOW {
            self.back.clear();
            self.back.reserve(raw.len());
            self.whole
                .decompress_to_buffer(compressed, &mut self.back)
                .map_err(broken)?;
            return Ok(self.back[..] == raw[..]);
        }
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        self.stream.reinit().map_err(broken)?;
        self.back.resize(Self::WINDOW, 0);
        let mut input = InBuffer::around(compressed);
        let mut compared = 0_usize;
        loop {
            let mut out = OutBuffer::around(self.back.as_mut_slice());
            let left = self.stream.run(&mut input, &mut out).map_err(broken)?;
            let n = out.pos();
            if raw.get(compared..compared + n) != Some(&self.back[..n]) {
                return Ok(false);
            }
            compared += n;
            // 0: the frame is complete. Otherwise it needs more input, or room to flush:
            // no output from input that is all consumed means the frame is cut short.
            if left == 0 {
                return Ok(compared == raw.len() && input.pos() == compressed.len());
            }
            if n == 0 && input.pos() == compressed.len() {
                return Ok(false);
            }
        }
    }
}

impl Blobber<'_> {
    /// The blob `id` of `len` bytes that `write` writes, compressed as it is written (the
    /// frame records its length, as a whole blob's does), so its plain bytes are never held
    /// whole; verified by hashing what it decompresses back to.
    pub(super) fn blob_written(
        &mut self,
        id: Hash,
        len: u64,
        write: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> std::result::Result<Sealed, String> {
        let Some(level) = self.level else {
            let mut raw = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            write(&mut raw).map_err(|e| format!("cannot write a blob: {e}"))?;
            return self.blob(id, &raw);
        };
        let raw = u32::try_from(len).map_err(|_| "a blob is larger than 4 GiB".to_string())?;
        compress_written(level, len, write, &mut self.compressed)
            .map_err(|e| format!("cannot compress: {e}"))?;
        let data = self.seal.seal(&self.compressed);
        if let Some(v) = &mut self.verify {
            self.seal.open_into(&data, &mut self.plain)?;
            if v.digest(&self.plain)? != (id, len) {
                return Err(
                    "verification failed: a blob read back differs from what was written".into(),
                );
            }
        }
        Ok(Sealed {
            id,
            data,
            raw,
            compressed: true,
        })
    }

    pub(super) fn blob(&mut self, id: Hash, raw: &[u8]) -> std::result::Result<Sealed, String> {
        let len =
            u32::try_from(raw.len()).map_err(|_| "a blob is larger than 4 GiB".to_string())?;
        let data = match &mut self.compress {
            Some(c) => {
                self.compressed.clear();
                self.compressed
                    .reserve(zstd::zstd_safe::compress_bound(raw.len()));
                c.compress_to_buffer(raw, &mut self.compressed)
                    .map_err(|e| format!("cannot compress: {e}"))?;
                self.seal.seal(&self.compressed)
            }
            None => self.seal.seal(raw),
        };
        if let Some(v) = &mut self.verify {
            self.seal.open_into(&data, &mut self.plain)?;
            let same = if self.compress.is_some() {
                v.same(&self.plain, raw)?
            } else {
                self.plain[..] == raw[..]
            };
            if !same {
                return Err(
                    "verification failed: a blob read back differs from what was written".into(),
                );
            }
        }
        Ok(Sealed {
            id,
            data,
            raw: len,
            compressed: self.compress.is_some(),
        })
    }
}

/// What the packer hands back: the pack it was filling, the packs written that no index file
/// names yet, and every batch's page ids in order.
pub(super) struct Packed {
    pub(super) pack: PackBuf,
    pub(super) packs: Vec<PackJson>,
    pub(super) content: Vec<Option<Vec<Hash>>>,
    pub(super) added: Added,
}

/// What this backup added, for the snapshot's summary.
#[derive(Default)]
pub(super) struct Added {
    pub(super) data_blobs: u64,
    pub(super) data_raw: u64,
    pub(super) data_packed: u64,
    pub(super) tree_blobs: u64,
    pub(super) trees_raw: u64,
    pub(super) trees_packed: u64,
}

/// The packer: fills packs of about the store's pack size with the sealed blobs in the order
/// they come, and hands each full one to the writer.
fn pack(
    rx: &Receiver<std::result::Result<Batch, String>>,
    out: &Sender<(Hash, Stored, PackJson)>,
    store: &Store<'_>,
    progress: &rustic_core::Progress,
) -> std::result::Result<Packed, Stop> {
    let mut packed = Packed {
        pack: PackBuf::for_data(store.local).map_err(Stop::Failed)?,
        packs: Vec::new(),
        content: Vec::new(),
        added: Added::default(),
    };
    for batch in rx {
        let batch = batch.map_err(Stop::Failed)?;
        for blob in batch.new {
            packed.added.data_blobs += 1;
            packed.added.data_raw += u64::from(blob.raw);
            packed.added.data_packed += blob.data.len() as u64;
            packed
                .pack
                .push(blob, &store.stages)
                .map_err(Stop::Failed)?;
            if packed.pack.len() >= store.pack_size {
                let next = PackBuf::for_data(store.local).map_err(Stop::Failed)?;
                let full = std::mem::replace(&mut packed.pack, next);
                let (id, stored, entry) = full
                    .finish(&store.seal, BlobType::Data, &store.stages)
                    .map_err(Stop::Failed)?;
                out.send((id, stored, entry)).map_err(|_| Stop::Stopped)?;
            }
        }
        progress.inc(batch.bytes);
        if let Some(seq) = batch.seq {
            if packed.content.len() <= seq {
                packed.content.resize(seq + 1, None);
            }
            packed.content[seq] = Some(batch.ids);
        }
    }
    Ok(packed)
}

/// A pack being filled: in memory, or (a data pack of a local repository) in a file.
#[derive(Default)]
pub(super) struct PackBuf {
    /// The pack's bytes; for a pack filled in a file, those not yet written to it.
    bytes: Vec<u8>,
    blobs: Vec<BlobJson>,
    spill: Option<Spill>,
}

/// The bytes a pack filled in a file gathers before it writes them there.
const SPILL_AT: usize = 1 << 20;

/// A finished pack: its bytes, or the file that holds them.
pub(super) enum Stored {
    Bytes(Vec<u8>),
    File(Spill),
}

impl Stored {
    /// Stores the pack as `id`: writes its bytes through `be`, or syncs and renames its file.
    pub(super) fn save(self, be: &dyn WriteBackend, id: Hash) -> std::result::Result<(), String> {
        match self {
            Self::Bytes(bytes) => write(be, FileType::Pack, id, bytes),
            Self::File(spill) => spill.commit(&id),
        }
    }
}

/// The room reserved for a data pack: a full pack and its header fit, and it is above the
/// most glibc's malloc ever serves from its heaps (its mmap threshold tops out at 32 MiB), so
/// every pack buffer is a mapping of its own, returned to the system when freed. Grown from
/// empty instead, pack buffers came from the threads' heaps and stayed there: a 512 MiB
/// SQLite backup peaked at 132-144 MiB instead of 83-84. Only the bytes written count
/// towards RSS.
const PACK_ROOM: usize = 40 << 20;

impl PackBuf {
    /// An empty pack with [`PACK_ROOM`] reserved.
    fn roomy() -> Self {
        Self {
            bytes: Vec::with_capacity(PACK_ROOM),
            blobs: Vec::new(),
            spill: None,
        }
    }

    /// An empty data pack: filled in a file of the repository at `local` when it is local
    /// (restic's way: [`Spill`]), else in memory.
    fn for_data(local: Option<&Path>) -> std::result::Result<Self, String> {
        let Some(repo) = local else {
            return Ok(Self::roomy());
        };
        Ok(Self {
            bytes: Vec::with_capacity(SPILL_AT * 2),
            blobs: Vec::new(),
            spill: Some(Spill::create(repo)?),
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// The pack's size so far.
    fn len(&self) -> u64 {
        self.spill.as_ref().map_or(0, Spill::written) + self.bytes.len() as u64
    }

    /// Adds `blob`; writing a pack filled in a file counts as `upload` in `stages`.
    fn push(&mut self, blob: Sealed, stages: &Stages) -> std::result::Result<(), String> {
        // Packs stay far below 4 GiB (rustic's size limit is a u32).
        let offset = u32::try_from(self.len()).unwrap_or(u32::MAX);
        let length = u32::try_from(blob.data.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&blob.data);
        self.blobs.push(BlobJson {
            id: Hex(blob.id),
            tpe: Kind::Data,
            offset,
            length,
            uncompressed_length: blob.compressed.then_some(blob.raw),
        });
        if let Some(spill) = &mut self.spill
            && self.bytes.len() >= SPILL_AT
        {
            stages.time(Stage::Upload, || spill.write(&self.bytes))?;
            self.bytes.clear();
        }
        Ok(())
    }

    /// The finished pack: the blobs, then restic's encrypted header (type, stored length,
    /// plain length when compressed, id — per blob), then the header's length; its id is the
    /// hash of it all. Writing a pack filled in a file counts as `upload` in `stages`.
    pub(super) fn finish(
        mut self,
        seal: &Seal,
        tpe: BlobType,
        stages: &Stages,
    ) -> std::result::Result<(Hash, Stored, PackJson), String> {
        let tree = tpe == BlobType::Tree;
        let mut header = Vec::with_capacity(self.blobs.len() * 41);
        for b in &mut self.blobs {
            b.tpe = if tree { Kind::Tree } else { Kind::Data };
            let kind = match (tree, b.uncompressed_length) {
                (false, None) => 0_u8,
                (true, None) => 1,
                (false, Some(_)) => 2,
                (true, Some(_)) => 3,
            };
            header.push(kind);
            header.extend_from_slice(&b.length.to_le_bytes());
            if let Some(raw) = b.uncompressed_length {
                header.extend_from_slice(&raw.to_le_bytes());
            }
            header.extend_from_slice(&b.id.0);
        }
        let header = seal.seal(&header);
        let len = u32::try_from(header.len()).map_err(|_| "a pack header is too large")?;
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        let (id, stored) = match self.spill {
            Some(mut spill) => {
                stages.time(Stage::Upload, || spill.write(&self.bytes))?;
                (spill.id(), Stored::File(spill))
            }
            None => (sha256(&self.bytes), Stored::Bytes(self.bytes)),
        };
        Ok((
            id,
            stored,
            PackJson {
                id: Hex(id),
                blobs: self.blobs,
            },
        ))
    }
}

/// Saves the trees that hold `node` at `path` through `saver`, the file's own first; returns
/// the root tree's id and how many directories lead to the file. Each tree is written
/// straight into its compressed blob ([`TreeSaver::add_tree`]): the file's tree lists every
/// page's id (8.7 MB of JSON for a 512 MiB database), which is never held whole.
fn save_trees(
    path: &Path,
    node: Node,
    saver: &mut TreeSaver<'_>,
) -> std::result::Result<(Hash, u64), String> {
    let dirs: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let dirs = dirs.split_last().map_or(&[][..], |(_, d)| d);
    let mut tree = Tree { nodes: vec![node] };
    for dir in dirs.iter().rev() {
        let id = saver.add_tree(&tree)?;
        // As rustic's archiver records the directories above a backed-up path: mode 0755, so
        // they can be entered.
        let meta = Metadata {
            mode: Some(0o755),
            ..Default::default()
        };
        let mut dir = Node::new_node(dir, NodeType::Dir, meta);
        dir.subtree = Some(Id::new(id).into());
        tree = Tree { nodes: vec![dir] };
    }
    let root = saver.add_tree(&tree)?;
    Ok((root, dirs.len() as u64))
}

/// Hashes and counts what is written to it, keeping none of it.
#[derive(Default)]
struct HashSink {
    hasher: Sha256,
    len: u64,
}

impl std::io::Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compresses the `len` bytes that `write` writes into one zstd frame in `out` (cleared first)
/// that records their length, as a frame compressed whole does.
fn compress_written(
    level: i32,
    len: u64,
    write: &mut dyn FnMut(&mut dyn std::io::Write) -> std::io::Result<()>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    out.clear();
    let mut enc = zstd::stream::write::Encoder::new(out, level)?;
    enc.set_pledged_src_size(Some(len))?;
    enc.include_contentsize(true)?;
    write(&mut enc)?;
    enc.finish().map(drop)
}

/// Writes `tree` as restic does: JSON and a newline.
fn write_tree(tree: &Tree, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, tree).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

/// A tree's id (the hash of its JSON and a newline) and length, without holding the JSON.
fn tree_id(tree: &Tree) -> std::result::Result<(Hash, u64), String> {
    let mut sink = HashSink::default();
    write_tree(tree, &mut sink).map_err(|e| format!("cannot write a tree: {e}"))?;
    Ok((sink.hasher.finalize().into(), sink.len))
}

/// A tree as restic writes it: JSON and a newline; its id is the hash of those bytes.
pub(super) fn tree_json(tree: &Tree) -> std::result::Result<(Hash, Vec<u8>), String> {
    let mut bytes = serde_json::to_vec(tree).map_err(|e| format!("cannot write a tree: {e}"))?;
    bytes.push(b'\n');
    Ok((sha256(&bytes), bytes))
}

/// The tree blobs of a backup, deduplicated against the repository and each other, sealed
/// and packed into tree packs of at most `pack_size` bytes.
pub(super) struct TreeSaver<'a> {
    cx: &'a Cx<'a>,
    be: &'a dyn WriteBackend,
    blobber: Blobber<'a>,
    pack_size: u64,
    pack: PackBuf,
    packs: Vec<PackJson>,
    fresh: HashSet<Hash, std::hash::BuildHasherDefault<IdHasher>>,
    added: Added,
}

impl<'a> TreeSaver<'a> {
    pub(super) fn new(store: &'a Store<'_>, cx: &'a Cx<'a>) -> std::result::Result<Self, String> {
        Ok(Self {
            cx,
            be: store.be,
            blobber: cx.blobber()?,
            pack_size: store.pack_size,
            pack: PackBuf::default(),
            packs: Vec::new(),
            fresh: HashSet::default(),
            added: Added::default(),
        })
    }

    /// Stores the tree `bytes` with id `id` unless the repository or this backup has it.
    pub(super) fn add(&mut self, id: Hash, bytes: &[u8]) -> std::result::Result<(), String> {
        self.added.trees_raw += bytes.len() as u64;
        if self.cx.known.trees.contains_key(&id) || !self.fresh.insert(id) {
            return Ok(());
        }
        let sealed = self.blobber.blob(id, bytes)?;
        self.added.tree_blobs += 1;
        self.added.trees_packed += sealed.data.len() as u64;
        self.pack.push(sealed, self.cx.stages)?;
        if self.pack.len() >= self.pack_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Stores `tree` unless the repository or this backup has it; returns its id. The JSON is
    /// written twice, never held: once to hash it, once into its compressed blob.
    pub(super) fn add_tree(&mut self, tree: &Tree) -> std::result::Result<Hash, String> {
        let (id, len) = tree_id(tree)?;
        self.added.trees_raw += len;
        if self.cx.known.trees.contains_key(&id) || !self.fresh.insert(id) {
            return Ok(id);
        }
        let sealed = self
            .blobber
            .blob_written(id, len, &mut |out| write_tree(tree, out))?;
        self.added.tree_blobs += 1;
        self.added.trees_packed += sealed.data.len() as u64;
        self.pack.push(sealed, self.cx.stages)?;
        if self.pack.len() >= self.pack_size {
            self.flush()?;
        }
        Ok(id)
    }

    fn flush(&mut self) -> std::result::Result<(), String> {
        let full = std::mem::take(&mut self.pack);
        let (id, stored, entry) = full.finish(self.cx.seal, BlobType::Tree, self.cx.stages)?;
        self.cx
            .stages
            .time(Stage::Upload, || stored.save(self.be, id))?;
        self.packs.push(entry);
        Ok(())
    }

    /// Writes the last tree pack; adds the tree packs to `packs` and the counts to `added`.
    pub(super) fn finish(
        mut self,
        packs: &mut Vec<PackJson>,
        added: &mut Added,
    ) -> std::result::Result<(), String> {
        if !self.pack.blobs.is_empty() {
            self.flush()?;
        }
        packs.append(&mut self.packs);
        added.tree_blobs += self.added.tree_blobs;
        added.trees_raw += self.added.trees_raw;
        added.trees_packed += self.added.trees_packed;
        Ok(())
    }
}

/// Writes one file of the repository.
fn write(
    be: &dyn WriteBackend,
    tpe: FileType,
    id: Hash,
    bytes: Vec<u8>,
) -> std::result::Result<(), String> {
    be.write_bytes(tpe, &Id::new(id), false, bytes.into())
        .map_err(|e| super::errors::one_line(&e))
}

/// Saves a repository file (index, snapshot): JSON, compressed as the repository's version
/// asks (a leading 2, then zstd), encrypted; its id is the hash of what is stored.
fn save_file(
    be: &dyn WriteBackend,
    seal: &Seal,
    level: Option<i32>,
    tpe: FileType,
    json: &[u8],
) -> std::result::Result<Hash, String> {
    let sealed = match level {
        Some(level) => {
            let mut body = vec![2_u8];
            body.extend(
                zstd::bulk::compress(json, level).map_err(|e| format!("cannot compress: {e}"))?,
            );
            seal.seal(&body)
        }
        None => seal.seal(json),
    };
    let id = sha256(&sealed);
    write(be, tpe, id, sealed)?;
    Ok(id)
}

/// Reads a repository file (index) back to its JSON.
fn read_file(
    be: &dyn WriteBackend,
    seal: &Seal,
    tpe: FileType,
    id: &Id,
) -> std::result::Result<Vec<u8>, String> {
    let stored = be
        .read_full(tpe, id)
        .map_err(|e| super::errors::one_line(&e))?;
    let plain = seal.open(&stored)?;
    match plain.split_first() {
        // Version 2 marks compressed files with a leading 2; JSON starts with `{` or `[`.
        Some((2, body)) => zstd::decode_all(body).map_err(|e| format!("cannot decompress: {e}")),
        _ => Ok(plain),
    }
}

/// A map keyed by blob or pack id.
pub(super) type IdMap<V> = HashMap<Hash, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Hashes an id by folding its bytes: ids are SHA-256 digests, already uniform, so SipHash
/// over them buys nothing (an index holds one entry per SQLite page of every snapshot).
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for word in bytes.chunks(8) {
            let mut b = [0_u8; 8];
            b[..word.len()].copy_from_slice(word);
            self.0 = self.0.rotate_left(23) ^ u64::from_le_bytes(b);
        }
    }
}

/// The repository's index: where each tree is, and for each data blob a `D` — where it is
/// (restores), or nothing (backups only ask whether a blob is stored: an id per entry instead
/// of an id and a place, 32 bytes instead of 52 for each page of every snapshot).
pub(super) struct Index<D = Loc> {
    pub(super) data: IdMap<D>,
    pub(super) trees: IdMap<Loc>,
    /// The packs the index names; a [`Loc`] names its pack by its position here.
    packs: Vec<Hash>,
    /// The size of its data blobs (packs grow with the repository, as rustic sizes them).
    data_bytes: u64,
}

impl<D> Default for Index<D> {
    fn default() -> Self {
        Self {
            data: IdMap::default(),
            trees: IdMap::default(),
            packs: Vec::new(),
            data_bytes: 0,
        }
    }
}

/// What an [`Index`] keeps of each data blob.
pub(super) trait DataEntry: Sized {
    fn new(loc: Loc) -> Self;
}

impl DataEntry for Loc {
    fn new(loc: Loc) -> Self {
        loc
    }
}

impl DataEntry for () {
    fn new(_: Loc) -> Self {}
}

/// Where one blob is stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct Loc {
    /// Its pack: a position in the index's list of packs ([`Index::pack`]).
    pub(super) pack: u32,
    pub(super) offset: u32,
    pub(super) length: u32,
    /// Its plain length, when it is stored compressed.
    raw: Option<u32>,
}

impl Loc {
    /// The blob's plain length.
    pub(super) fn plain_len(&self) -> u32 {
        self.raw.unwrap_or(self.length.saturating_sub(32))
    }

    /// The blob, read alone from its pack `pack`.
    pub(super) fn read(
        &self,
        pack: Hash,
        be: &dyn WriteBackend,
        seal: &Seal,
    ) -> std::result::Result<Vec<u8>, String> {
        let stored = be
            .read_partial(
                FileType::Pack,
                &Id::new(pack),
                false,
                self.offset,
                self.length,
            )
            .map_err(|e| super::errors::one_line(&e))?;
        self.decode(&stored, seal, None)
    }

    /// Decodes the blob from its stored bytes into `out`, which is exactly its plain length;
    /// `scratch` holds the decrypted bytes in between.
    pub(super) fn decode_into(
        &self,
        stored: &[u8],
        seal: &Seal,
        unzip: &mut zstd::bulk::Decompressor<'static>,
        scratch: &mut Vec<u8>,
        out: &mut [u8],
    ) -> std::result::Result<(), String> {
        seal.open_into(stored, scratch)?;
        let n = match self.raw {
            None if scratch.len() == out.len() => {
                out.copy_from_slice(scratch);
                out.len()
            }
            None => usize::MAX,
            Some(_) => unzip
                .decompress_to_buffer(scratch.as_slice(), out)
                .map_err(|e| format!("{}: a blob does not decompress: {e}", super::DAMAGED))?,
        };
        if n == out.len() {
            Ok(())
        } else {
            Err(format!("{}: a blob has the wrong length", super::DAMAGED))
        }
    }

    /// The blob's plain content from its stored bytes (with `unzip`, a thread's reused
    /// decompression context, when there is one).
    pub(super) fn decode(
        &self,
        stored: &[u8],
        seal: &Seal,
        unzip: Option<&mut zstd::bulk::Decompressor<'static>>,
    ) -> std::result::Result<Vec<u8>, String> {
        let plain = seal.open(stored)?;
        let Some(raw) = self.raw else {
            return Ok(plain);
        };
        let raw = raw as usize;
        let out = match unzip {
            Some(z) => z.decompress(&plain, raw),
            None => zstd::bulk::decompress(&plain, raw),
        }
        .map_err(|e| format!("{}: a blob does not decompress: {e}", super::DAMAGED))?;
        if out.len() == raw {
            Ok(out)
        } else {
            Err(format!("{}: a blob has the wrong length", super::DAMAGED))
        }
    }
}

impl<D> Index<D> {
    /// The id of the pack `loc` is in.
    pub(super) fn pack(&self, loc: &Loc) -> Hash {
        // Every `Loc` of this index was made by `read` with a position in `packs`.
        self.packs[loc.pack as usize]
    }

    /// The ids of the packs the index names, by position.
    pub(super) fn packs(&self) -> &[Hash] {
        &self.packs
    }
}

impl<D: DataEntry> Index<D> {
    pub(super) fn read(be: &dyn WriteBackend, seal: &Seal) -> std::result::Result<Self, String> {
        let ids = be
            .list(FileType::Index)
            .map_err(|e| super::errors::one_line(&e))?;
        // Read, decrypted and parsed on every core (backups write index files of at most
        // `INDEX_BLOBS` blobs, so a large repository has many); the maps are filled here.
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(2, std::num::NonZero::get)
            .min(ids.len());
        let parsed = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| -> std::result::Result<Vec<IndexJson>, String> {
                        let mut files = Vec::new();
                        while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let json = read_file(be, seal, FileType::Index, id)?;
                            files.push(
                                serde_json::from_slice(&json)
                                    .map_err(|e| format!("cannot read index {id}: {e}"))?,
                            );
                        }
                        Ok(files)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("an index reader failed".into()))
                })
                .collect::<std::result::Result<Vec<_>, String>>()
        })?;
        let mut index = Self::default();
        let (mut data, mut trees, mut packs) = (0, 0, 0);
        for pack in parsed.iter().flatten().flat_map(|f| &f.packs) {
            packs += 1;
            for blob in &pack.blobs {
                match blob.tpe {
                    Kind::Data => data += 1,
                    Kind::Tree => trees += 1,
                }
            }
        }
        index.data.reserve(data);
        index.trees.reserve(trees);
        index.packs.reserve(packs);
        // Packs marked for deletion (`packs_to_delete`) are not read: their blobs are stored
        // again rather than referenced.
        for pack in parsed.into_iter().flatten().flat_map(|f| f.packs) {
            let at = u32::try_from(index.packs.len())
                .map_err(|_| "the index names more than 4 billion packs".to_string())?;
            index.packs.push(pack.id.0);
            for blob in pack.blobs {
                let loc = Loc {
                    pack: at,
                    offset: blob.offset,
                    length: blob.length,
                    raw: blob.uncompressed_length,
                };
                match blob.tpe {
                    Kind::Data => {
                        index.data_bytes += u64::from(blob.length);
                        index.data.insert(blob.id.0, D::new(loc));
                    }
                    Kind::Tree => {
                        index.trees.insert(blob.id.0, loc);
                    }
                }
            }
        }
        Ok(index)
    }
}

/// An index file, as restic writes it.
#[derive(Serialize, Deserialize)]
struct IndexJson {
    packs: Vec<PackJson>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct PackJson {
    id: Hex,
    blobs: Vec<BlobJson>,
}

#[derive(Serialize, Deserialize)]
struct BlobJson {
    id: Hex,
    #[serde(rename = "type")]
    tpe: Kind,
    offset: u32,
    length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uncompressed_length: Option<u32>,
}

/// A blob's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Data,
    Tree,
}

/// An id in hex, as the repository's JSON files hold it.
pub(super) struct Hex(pub(super) Hash);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hex::parse(s.as_bytes())
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom(format!("not an id: {s:?}")))
    }
}

/// Each byte's value as a hex digit, or [`NOT_HEX`].
static HEX_DIGITS: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        t[b"0123456789ABCDEF"[i] as usize] = i as u8;
        i += 1;
    }
    t
};
/// Above every digit's value in [`HEX_DIGITS`] (its high bits are what marks a non-digit).
const NOT_HEX: u8 = 0xf0;

impl Hex {
    /// The 32 bytes that 64 hex digits spell (either case), or `None`. By table, without a
    /// branch per digit: an index file holds one id per blob, 150,000 for a 512 MiB SQLite
    /// database's two snapshots, and the `hex` crate took 200-370 ns an id where this takes
    /// about 22 (a loop over 150,000 ids, release build).
    fn parse(digits: &[u8]) -> Option<Hash> {
        if digits.len() != 64 {
            return None;
        }
        let mut out = [0_u8; 32];
        let mut seen = 0_u8;
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (high, low) = (HEX_DIGITS[pair[0] as usize], HEX_DIGITS[pair[1] as usize]);
            seen |= high | low;
            *byte = (high << 4) | low;
        }
        (seen & NOT_HEX == 0).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use rustic_core::{
        DataId, Id,
        repofile::{Metadata, Node, NodeType, Tree},
    };

    use super::{Hex, Verifier, compress_written, tree_id, tree_json, write_tree};

    #[test]
    fn an_id_is_read_from_its_hex_digits_and_nothing_else() {
        // Every byte value, in both cases, as the `hex` crate reads them.
        let ids: Vec<[u8; 32]> = (0..8_u8)
            .map(|k| std::array::from_fn(|i| (i as u8).wrapping_mul(8).wrapping_add(k)))
            .collect();
        for id in &ids {
            let lower = hex::encode(id);
            assert_eq!(Hex::parse(lower.as_bytes()), Some(*id), "{lower}");
            assert_eq!(
                Hex::parse(lower.to_uppercase().as_bytes()),
                Some(*id),
                "{lower}"
            );
        }
        // A wrong length, and a non-digit at either end or in the middle: the bytes just
        // outside each range of digits, a space, a sign, and a byte of a UTF-8 sequence.
        let good = hex::encode(ids[3]);
        for len in [0, 1, 62, 63, 65, 66, 128] {
            let digits: String = good.chars().cycle().take(len).collect();
            assert_eq!(Hex::parse(digits.as_bytes()), None, "{len} digits");
        }
        for bad in [b'/', b':', b'@', b'G', b'`', b'g', b' ', b'-', 0xc3, 0] {
            for at in [0, 1, 31, 62, 63] {
                let mut digits = good.clone().into_bytes();
                digits[at] = bad;
                assert_eq!(Hex::parse(&digits), None, "{bad:#x} at {at}");
            }
        }
    }

    /// Compressible but not uniform: a dump's rows.
    fn rows(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"0123456789 abcdef,\n"[(i * 7 + i / 4096) % 19])
            .collect()
    }

    /// A tree written straight into its compressed blob is the tree restic writes: the same
    /// id, length and bytes, in a frame that records its length; the check of what was
    /// written goes by the hash of what the frame decompresses to.
    #[test]
    fn a_tree_compressed_as_it_is_written_is_the_tree_restic_writes() {
        let mut node = Node::new_node(
            std::ffi::OsStr::new("app.db"),
            NodeType::File,
            Metadata::default(),
        );
        node.content = Some(
            (0..20_000_u32)
                .map(|i| {
                    let mut id = [0_u8; 32];
                    id[..4].copy_from_slice(&i.to_le_bytes());
                    id[31] = 0x5c;
                    DataId::from(Id::new(id))
                })
                .collect(),
        );
        let tree = Tree { nodes: vec![node] };
        let (id, json) = tree_json(&tree).expect("json");
        assert_eq!(tree_id(&tree).expect("id"), (id, json.len() as u64));
        let mut z = Vec::new();
        compress_written(
            3,
            json.len() as u64,
            &mut |out| write_tree(&tree, out),
            &mut z,
        )
        .expect("compress");
        assert!(
            matches!(
                zstd::zstd_safe::get_frame_content_size(&z),
                Ok(Some(n)) if n == json.len() as u64
            ),
            "the frame records its length"
        );
        assert!(zstd::bulk::decompress(&z, json.len()).expect("decompress") == json);
        let mut v = Verifier::new().expect("zstd");
        assert_eq!(v.digest(&z).expect("digest"), (id, json.len() as u64));
        // A frame cut short is an error; other content, another hash.
        assert!(v.digest(&z[..z.len() - 1]).is_err());
        let mut other = json.clone();
        other[10] ^= 1;
        let z2 = zstd::bulk::compress(&other, 3).expect("compress");
        assert_ne!(v.digest(&z2).expect("digest").0, id);
    }

    #[test]
    fn a_blob_compares_equal_only_to_what_was_compressed() {
        let mut v = Verifier::new().expect("zstd");
        // Below the window (whole) and across several windows (streamed).
        for len in [4096, Verifier::WINDOW, 3 * Verifier::WINDOW + 123] {
            let raw = rows(len);
            let z = zstd::bulk::compress(&raw, 3).expect("compress");
            assert!(v.same(&z, &raw).expect("decompress"), "{len}");
            // One byte changed, at the start and in the last window.
            for at in [0, len - 1] {
                let mut other = raw.clone();
                other[at] ^= 1;
                assert!(!v.same(&z, &other).expect("decompress"), "{len} at {at}");
            }
            // Longer or shorter than what the frame holds.
            let mut longer = raw.clone();
            longer.push(b'x');
            assert!(!v.same(&z, &longer).expect("decompress"), "{len} longer");
            assert!(
                !v.same(&z, &raw[..len - 1]).unwrap_or(false),
                "{len} shorter"
            );
            // A frame cut short never compares equal.
            assert!(
                !v.same(&z[..z.len() - 1], &raw).unwrap_or(false),
                "{len} cut"
            );
        }
    }
}
