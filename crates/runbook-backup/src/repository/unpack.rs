//! One file of a snapshot restored straight from the packs: each stretch of a pack read with
//! one read, its blobs decrypted and decompressed on every core, and each run of consecutive
//! chunks written with one write. For SQLite databases, whose snapshots are long sequences of
//! page-sized blobs that rustic_core restores one blob (and one `pwrite`) at a time.
//!
//! Memory stays bounded whatever the file's size: a worker holds one stretch of a pack (at
//! most [`STRETCH`] bytes) and what it decodes from it.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    os::unix::fs::FileExt,
    path::{Component, Path},
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use rustic_core::{FileType, Id, WriteBackend, repofile::Node};
use serde_json::value::RawValue;

use super::{
    Repo, guard,
    pages::{Hash, Hex, Index, Loc},
    seal::Seal,
    spill::pack_path,
};
use crate::{Error, Result};

/// The most a worker reads from a pack at once, and the most it decodes from one read.
pub(super) const STRETCH: u64 = 4 << 20;
/// The same for the pages of one database file, which fill whole stretches: with four workers
/// each holding a read and what it decodes to, 2 MiB restored a 512 MiB SQLite database at
/// the same speed as 4 MiB in 68.6 MiB of peak RSS instead of 76-82 (restic 75-81). A tree's
/// stretches cut across many small files, and it restored 15% slower with 2 MiB.
const PAGE_STRETCH: u64 = 2 << 20;
/// Bytes between two wanted blobs of a pack worth reading through rather than seeking past.
const GAP: u64 = 256 << 10;

impl Repo {
    /// Restores the one file recorded at `path` in snapshot `id` as the new file `to`, not yet
    /// synced to disk: the caller syncs it (beside its own check of the file). Records the
    /// seconds of its phases in `phases`: `plan` (the index and the file's list of blobs),
    /// `write` (the data).
    pub(crate) fn restore_pages(
        self,
        id: &str,
        path: &str,
        to: &Path,
        phases: &mut BTreeMap<String, f64>,
    ) -> Result<()> {
        let target = self.target.clone();
        guard(&target, "restore", move || {
            self.restore_pages_inner(id, path, to, phases)
        })
    }

    /// The repository's key and index, the node recorded at `path` in snapshot `id` (without
    /// its list of blobs) and that list.
    fn file(&self, id: &str, path: &str) -> Result<(Seal, Index, Node, Vec<Hash>)> {
        let fail = self.fail("restore");
        let snap = self.find_raw(id)?;
        let seal = Seal::new(&self.inner.key()).map_err(fail)?;
        let be: &dyn WriteBackend = &*self.backend;
        let index = Index::read(be, &seal).map_err(fail)?;
        let (node, content) =
            find_node(be, &seal, &index, hash_of(*snap.tree), path).map_err(fail)?;
        Ok((seal, index, node, content))
    }

    fn restore_pages_inner(
        self,
        id: &str,
        path: &str,
        to: &Path,
        phases: &mut BTreeMap<String, f64>,
    ) -> Result<()> {
        let started = Instant::now();
        let fail = self.fail("restore");
        let (seal, index, node, content) = self.file(id, path)?;
        let mut wanted = Wanted::new(&index);
        let size = wanted.add(&index, 0, &content).map_err(fail)?;
        if size != node.meta.size {
            return Err(fail(format!(
                "{path}: the snapshot records {} bytes but its blobs hold {size}",
                node.meta.size
            )));
        }
        // The plan is all the data phase needs: the index and the node's list of blobs (the
        // larger part of what this process holds) go before the workers' buffers come.
        drop(index);
        drop(content);
        let stretches = wanted.stretches(PAGE_STRETCH);
        let planned = started.elapsed().as_secs_f64();
        phases.insert("plan".into(), planned);
        crate::failpoint("restore-planned");

        let io = |e: std::io::Error| Error::Io {
            context: format!("cannot write {}", to.display()),
            source: e,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(to)
            .map_err(io)?;
        file.set_len(size).map_err(io)?;
        let progress = self.inner.progress_bytes("restoring…");
        progress.set_length(size);
        restore_stretches(self.packs(), &seal, &stretches, &One(&file), &progress)
            .map_err(|e| fail(format!("{path}: {e}")))?;
        progress.finish();
        if let Some(mode) = node.meta.mode {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io)?;
        }
        if let Some(mtime) = node.meta.mtime {
            file.set_modified(std::time::SystemTime::from(mtime))
                .map_err(io)?;
        }
        phases.insert("write".into(), started.elapsed().as_secs_f64() - planned);
        Ok(())
    }
}

/// The ids of a file node's blobs, in order.
pub(super) fn content_ids(node: &Node) -> Vec<Hash> {
    // From a slice, so the vector is allocated once at its length: 130,000 ids for a 512 MiB
    // database.
    node.content
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|d| hash_of(**d))
        .collect()
}

/// The 32 bytes of `id`. rustic_core keeps them private; `Id` derives `Hash`, which feeds a
/// hasher its length and then the bytes in one write, so a hasher that keeps what it is fed
/// reads them back without a round trip through hex (400 ns an id: 50 ms of the plan of a
/// 512 MiB SQLite restore). Should `Id` ever hash differently, the hex form is used.
pub(super) fn hash_of(id: Id) -> Hash {
    use std::hash::{Hash as _, Hasher};
    #[derive(Default)]
    struct Fed {
        bytes: Hash,
        len: usize,
    }
    impl Hasher for Fed {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            if let Some(to) = self.bytes.get_mut(self.len..self.len + bytes.len()) {
                to.copy_from_slice(bytes);
            }
            self.len += bytes.len();
        }
        // The length `Hash` writes before a slice's bytes.
        fn write_usize(&mut self, _: usize) {}
    }
    let mut fed = Fed::default();
    id.hash(&mut fed);
    if fed.len == fed.bytes.len() {
        return fed.bytes;
    }
    let mut out = [0_u8; 32];
    // A hex id is 64 hex digits by construction.
    let _ = hex::decode_to_slice(id.to_hex().as_str(), &mut out);
    out
}

/// The node at `path` (components separated by `/`) below the tree `root`, without its list
/// of blobs, and that list.
fn find_node(
    be: &dyn WriteBackend,
    seal: &Seal,
    index: &Index,
    root: Hash,
    path: &str,
) -> std::result::Result<(Node, Vec<Hash>), String> {
    let names: Vec<&OsStr> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut tree = root;
    for (i, name) in names.iter().enumerate() {
        let loc = index
            .trees
            .get(&tree)
            .ok_or_else(|| format!("{}: a tree of the snapshot is missing", super::DAMAGED))?;
        let json = loc.read(index.pack(loc), be, seal)?;
        let (node, content) =
            node_named(&json, name)?.ok_or_else(|| format!("{path} is not in the snapshot"))?;
        if i + 1 == names.len() {
            return Ok((node, content));
        }
        tree = node
            .subtree
            .map(|t| hash_of(*t))
            .ok_or_else(|| format!("{path}: {} is not a directory", name.display()))?;
    }
    Err(format!("{path} names no file"))
}

/// The node called `name` in the tree `json`, without its list of blobs, and that list.
///
/// rustic_core's `Node` flattens its metadata, so serde first copies every field of a node,
/// each id of its list of blobs among them, before it reads one; a 512 MiB database's node
/// lists 130,000 ids. Here each node's fields are split off as raw JSON, the node is read
/// by rustic_core without its list (its name, type and metadata keep rustic_core's meaning),
/// and only the wanted node's list is read, by [`Hex`]: the plan of a 512 MiB SQLite
/// restore took 0.12 s instead of 0.15 (BENCHMARKS.md).
fn node_named(json: &[u8], name: &OsStr) -> std::result::Result<Option<(Node, Vec<Hash>)>, String> {
    #[derive(serde::Deserialize)]
    struct Nodes<'a> {
        #[serde(borrow)]
        nodes: Vec<BTreeMap<String, &'a RawValue>>,
    }
    let bad = |e: serde_json::Error| format!("cannot read a tree: {e}");
    let tree: Nodes<'_> = serde_json::from_slice(json).map_err(bad)?;
    for mut fields in tree.nodes {
        let content = fields.remove("content");
        let node: Node = serde_json::to_string(&fields)
            .and_then(|rest| serde_json::from_str(&rest))
            .map_err(bad)?;
        if node.name() != name {
            continue;
        }
        let content = match content {
            Some(raw) => serde_json::from_str::<Option<Vec<Hex>>>(raw.get())
                .map_err(bad)?
                .unwrap_or_default(),
            None => Vec::new(),
        };
        return Ok(Some((node, content.into_iter().map(|h| h.0).collect())));
    }
    Ok(None)
}

/// Every stretch on the workers, two per core (while one waits on its read, the other
/// decodes), each written through `sink`.
pub(super) fn restore_stretches(
    packs: Packs<'_>,
    seal: &Seal,
    stretches: &[Stretch],
    sink: &dyn Sink,
    progress: &rustic_core::Progress,
) -> std::result::Result<(), String> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .saturating_mul(2)
        .min(stretches.len().max(1));
    let work = || -> std::result::Result<(), String> {
        let mut unzip = zstd::bulk::Decompressor::new()
            .map_err(|e| format!("cannot set up decompression: {e}"))?;
        let mut spare = Spare::default();
        let mut stored = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(s) = stretches.get(i) else {
                return Ok(());
            };
            let read = s.read(&packs, &mut stored)?;
            progress.inc(s.restore(read, seal, &mut unzip, sink, &mut spare)?);
        }
    };
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..workers).map(|_| sc.spawn(work)).collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
        })
    })
}

/// A worker's written stretch buffers, filled again by its next stretches: a stretch decodes
/// to up to a few MiB, and allocating each anew costs a fresh mapping and a page fault per
/// 4 KiB (runbook holds glibc's mmap threshold at 128 KiB: main.rs).
#[derive(Default)]
struct Spare(Vec<Vec<u8>>);

impl Spare {
    /// Buffers worth keeping: above the mmap threshold, and two.
    const MIN: usize = 128 << 10;
    const KEEP: usize = 2;

    /// A buffer of `len` bytes, for a stretch to fill whole: a kept buffer keeps what an
    /// earlier stretch wrote into it (only bytes past its old length are zeroed), since
    /// zeroing 2 MiB for every stretch cost a restore a memset of its whole size.
    fn take(&mut self, len: usize) -> Vec<u8> {
        if len < Self::MIN {
            return vec![0; len];
        }
        let mut buf = self.0.pop().unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    /// Keeps `buf` for a later stretch, when it is worth keeping and there is room.
    fn keep(&mut self, buf: Vec<u8>) {
        if buf.capacity() >= Self::MIN && self.0.len() < Self::KEEP {
            self.0.push(buf);
        }
    }
}

/// Where restored bytes go: the files of a restore, by number.
pub(super) trait Sink: Sync {
    /// Writes each run (an offset and the bytes that start there) into file `file`.
    fn write(&self, file: u32, runs: &[(u64, &[u8])]) -> std::result::Result<(), String>;
}

/// A restore of one file, open for the whole restore.
struct One<'a>(&'a std::fs::File);

impl Sink for One<'_> {
    fn write(&self, _file: u32, runs: &[(u64, &[u8])]) -> std::result::Result<(), String> {
        runs.iter().try_for_each(|(at, data)| {
            self.0
                .write_all_at(data, *at)
                .map_err(|e| format!("cannot write: {e}"))
        })
    }
}

/// Where one copy of a blob goes: which file of the restore, at which offset.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Dest {
    file: u32,
    offset: u64,
}

/// Consecutive wanted blobs of one pack, read with one read.
pub(super) struct Stretch {
    pack: Hash,
    start: u64,
    end: u64,
    /// The bytes its blobs decode to (at every place they go): bounded like the stored bytes,
    /// since a dump can compress tenfold.
    plain: u64,
    /// Each blob: where it is in the pack, and every place it goes to.
    blobs: Vec<(Loc, Vec<Dest>)>,
}

/// The blobs a restore wants: every place each one goes to, in the order they were added,
/// and the ids of the packs their places name (the index is gone by the time they are read).
pub(super) struct Wanted {
    blobs: Vec<(Loc, Dest)>,
    packs: Vec<Hash>,
}

impl Wanted {
    /// Nothing wanted yet, from the packs of `index`.
    pub(super) fn new(index: &Index) -> Self {
        Self {
            blobs: Vec::new(),
            packs: index.packs().to_vec(),
        }
    }

    /// Adds the blobs `ids` of file `file`, one after the other; returns the file's size.
    pub(super) fn add(
        &mut self,
        index: &Index,
        file: u32,
        ids: &[Hash],
    ) -> std::result::Result<u64, String> {
        self.blobs.reserve(ids.len());
        let mut size = 0_u64;
        for id in ids {
            let loc = index.data.get(id).ok_or_else(|| {
                format!(
                    "{}: blob {} is in no index",
                    super::DAMAGED,
                    hex::encode(&id[..4])
                )
            })?;
            self.blobs.push((*loc, Dest { file, offset: size }));
            size += u64::from(loc.plain_len());
        }
        Ok(size)
    }

    /// Which stretches of which packs to read, in the order of the places they fill; each
    /// at most `max` bytes read and `max` bytes decoded.
    pub(super) fn stretches(mut self, max: u64) -> Vec<Stretch> {
        // By pack and offset in it: a blob's places (one blob is one offset of one pack) next
        // to each other, and the blobs of a pack in the order a read meets them.
        self.blobs.sort_unstable_by(|(a, at), (b, bt)| {
            (a.pack, a.offset, at).cmp(&(b.pack, b.offset, bt))
        });
        let mut stretches = Vec::new();
        let mut current: Option<Stretch> = None;
        let mut rest = self.blobs.as_slice();
        while let Some(&(loc, _)) = rest.first() {
            let same = rest
                .iter()
                .take_while(|(l, _)| l.pack == loc.pack && l.offset == loc.offset)
                .count();
            let at: Vec<Dest> = rest[..same].iter().map(|(_, d)| *d).collect();
            rest = &rest[same..];
            let (start, end) = (
                u64::from(loc.offset),
                u64::from(loc.offset) + u64::from(loc.length),
            );
            let plain = u64::from(loc.plain_len()) * at.len() as u64;
            if let Some(s) = &mut current
                && s.pack == self.packs[loc.pack as usize]
                && start <= s.end + GAP
                && end - s.start <= max
                && s.plain + plain <= max
            {
                s.end = s.end.max(end);
                s.plain += plain;
                s.blobs.push((loc, at));
                continue;
            }
            stretches.extend(current.take());
            current = Some(Stretch {
                // Every `Loc` came from the index whose packs these are.
                pack: self.packs[loc.pack as usize],
                start,
                end,
                plain,
                blobs: vec![(loc, at)],
            });
        }
        stretches.extend(current);
        // In file order, so files fill front to back.
        stretches.sort_by_key(|s| s.blobs.iter().flat_map(|(_, at)| at.first()).min().copied());
        stretches
    }
}

impl Stretch {
    /// The stretch's bytes, read with one read into `buf`.
    fn read<'b>(
        &self,
        packs: &Packs<'_>,
        buf: &'b mut Vec<u8>,
    ) -> std::result::Result<&'b [u8], String> {
        packs.read(self.pack, self.start, self.end - self.start, buf)
    }

    /// The stored bytes of `loc`, one of the stretch's blobs.
    fn slice<'a>(&self, stored: &'a [u8], loc: &Loc) -> std::result::Result<&'a [u8], String> {
        let from = usize::try_from(u64::from(loc.offset) - self.start).unwrap_or(usize::MAX);
        stored
            .get(from..from.saturating_add(loc.length as usize))
            .ok_or_else(|| format!("{}: a pack is shorter than its index says", super::DAMAGED))
    }

    /// Reads the stretch, decodes its blobs straight into the runs they fill and writes them:
    /// each run of consecutive offsets of a file with one write. Returns the bytes written.
    fn restore(
        &self,
        stored: &[u8],
        seal: &Seal,
        unzip: &mut zstd::bulk::Decompressor<'static>,
        sink: &dyn Sink,
        spare: &mut Spare,
    ) -> std::result::Result<u64, String> {
        // Every place a blob goes, in file order: (where, which blob).
        let mut pieces: Vec<(Dest, usize)> = self
            .blobs
            .iter()
            .enumerate()
            .flat_map(|(i, (_, at))| at.iter().map(move |d| (*d, i)))
            .collect();
        pieces.sort_unstable();
        // The runs of each file (file, offset, length), and where in the slab each piece
        // goes: the runs lie end to end in one buffer for the whole stretch.
        let mut spans: Vec<(u32, u64, usize)> = Vec::new();
        let mut starts = Vec::with_capacity(pieces.len());
        let mut filled = 0_usize;
        for &(dest, i) in &pieces {
            let len = self.blobs[i].0.plain_len() as usize;
            match spans.last_mut() {
                Some((file, at, run)) if *file == dest.file && *at + *run as u64 == dest.offset => {
                    *run += len;
                }
                _ => spans.push((dest.file, dest.offset, len)),
            }
            starts.push(filled);
            filled += len;
        }
        // Every byte of it is written below, by a blob's decoding or its copy, before any
        // of it is written out.
        let mut slab = spare.take(filled);
        // Each blob decoded once, into its first place; copied to any other.
        let mut first: Vec<Option<usize>> = vec![None; self.blobs.len()];
        let mut scratch = Vec::new();
        for (&(_, i), &at) in pieces.iter().zip(&starts) {
            let loc = &self.blobs[i].0;
            let len = loc.plain_len() as usize;
            if let Some(from) = first[i] {
                slab.copy_within(from..from + len, at);
                continue;
            }
            let sealed = self.slice(stored, loc)?;
            loc.decode_into(sealed, seal, unzip, &mut scratch, &mut slab[at..at + len])?;
            first[i] = Some(at);
        }
        let mut batch: Vec<(u64, &[u8])> = Vec::new();
        let mut current = spans.first().map_or(0, |(f, _, _)| *f);
        let mut rest = &slab[..];
        for (file, at, len) in spans {
            if file != current && !batch.is_empty() {
                sink.write(current, &batch)?;
                batch.clear();
            }
            current = file;
            let (run, after) = rest.split_at(len);
            batch.push((at, run));
            rest = after;
        }
        if !batch.is_empty() {
            sink.write(current, &batch)?;
        }
        drop(batch);
        spare.keep(slab);
        Ok(filled as u64)
    }
}

impl Repo {
    /// Streams the file recorded at `path` in snapshot `id` into `out` (a database dump into
    /// its restore tool): stretches of packs are read and decoded on every core ahead of the
    /// writer, so the tool reading `out` does not wait on the repository; at most a few
    /// stretches are held at once.
    pub(crate) fn dump_to(self, id: &str, path: &str, out: &mut dyn std::io::Write) -> Result<()> {
        let target = self.target.clone();
        guard(&target, "restore", move || self.dump_inner(id, path, out))
    }

    fn dump_inner(self, id: &str, path: &str, out: &mut dyn std::io::Write) -> Result<()> {
        let fail = self.fail("restore");
        let packs = self.packs();
        let (seal, index, node, content) = self.file(id, path)?;
        let mut runs: Vec<Stretch> = Vec::new();
        for id in content {
            let loc = *index.data.get(&id).ok_or_else(|| {
                fail(format!(
                    "{}: blob {} is in no index",
                    super::DAMAGED,
                    hex::encode(&id[..4])
                ))
            })?;
            let (start, end) = (
                u64::from(loc.offset),
                u64::from(loc.offset) + u64::from(loc.length),
            );
            // The next blob of the file follows the last one in the same pack: one read.
            let pack = index.pack(&loc);
            if let Some(run) = runs.last_mut()
                && run.pack == pack
                && start == run.end
                && end - run.start <= STRETCH
                && run.plain + u64::from(loc.plain_len()) <= STRETCH
            {
                run.end = end;
                run.plain += u64::from(loc.plain_len());
                run.blobs.push((loc, Vec::new()));
                continue;
            }
            runs.push(Stretch {
                pack,
                start,
                end,
                plain: u64::from(loc.plain_len()),
                blobs: vec![(loc, Vec::new())],
            });
        }
        // As for a file: the plan is all the stream needs.
        drop(index);
        let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let written = std::thread::scope(|sc| {
            let (jobs_tx, jobs_rx) =
                crossbeam_channel::bounded::<(usize, crossbeam_channel::Sender<Decoded>)>(workers);
            // Buffers the writer is done with, for the readers' next stretches: as many as
            // there are stretches in flight.
            let (spare_tx, spare_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
            for _ in 0..workers {
                let (rx, runs, seal, packs) = (jobs_rx.clone(), &runs, &seal, &packs);
                let spare = spare_rx.clone();
                sc.spawn(move || {
                    let mut bufs = DecodeBufs {
                        stored: Vec::new(),
                        scratch: Vec::new(),
                        unzip: zstd::bulk::Decompressor::new(),
                    };
                    for (i, reply) in rx {
                        let out = spare.try_recv().unwrap_or_default();
                        let _ = reply.send(runs[i].decode(packs, &mut bufs, seal, out));
                    }
                });
            }
            drop(jobs_rx);
            // The readers end when `jobs_tx` is dropped, at the end of this closure.
            // Ask for a few runs ahead, then write each as it comes back, in order.
            let mut pending = std::collections::VecDeque::new();
            let mut next = 0;
            let mut total = 0_u64;
            loop {
                while pending.len() < workers * 2 && next < runs.len() {
                    let (tx, rx) = crossbeam_channel::bounded(1);
                    if jobs_tx.send((next, tx)).is_err() {
                        return Err("the restore's readers stopped".to_string());
                    }
                    pending.push_back(rx);
                    next += 1;
                }
                let Some(rx) = pending.pop_front() else {
                    return Ok(total);
                };
                let data = rx
                    .recv()
                    .map_err(|_| "a restore reader failed".to_string())??;
                out.write_all(&data)
                    .map_err(|e| format!("cannot write the restored data: {e}"))?;
                total += data.len() as u64;
                let _ = spare_tx.send(data);
            }
        })
        .map_err(|e| fail(format!("{path}: {e}")))?;
        if written != node.meta.size {
            return Err(fail(format!(
                "{path}: the snapshot records {} bytes but its blobs hold {written}",
                node.meta.size
            )));
        }
        out.flush()
            .map_err(|e| fail(format!("cannot write the restored data: {e}")))
    }
}

/// A run's blobs, decoded in order.
type Decoded = std::result::Result<Vec<u8>, String>;

impl Stretch {
    /// Reads the stretch and decodes its blobs, in order, straight into `out`: a buffer an
    /// earlier stretch filled, handed back by the writer (a dump's stretch decodes to a few
    /// MiB, and a fresh buffer for it, with one for each blob copied into it, cost a mapping
    /// and a page fault per 4 KiB; runbook holds glibc's mmap threshold at 128 KiB, main.rs).
    /// Every byte up to the stretch's length is written by a blob's decoding or the stretch
    /// fails, so what an earlier stretch left there is never sent on.
    fn decode(
        &self,
        packs: &Packs<'_>,
        bufs: &mut DecodeBufs,
        seal: &Seal,
        mut out: Vec<u8>,
    ) -> Decoded {
        let DecodeBufs {
            stored,
            scratch,
            unzip,
        } = bufs;
        let unzip = unzip
            .as_mut()
            .map_err(|e| format!("cannot start decompressing: {e}"))?;
        let stored = self.read(packs, stored)?;
        let len = self.blobs.iter().map(|(l, _)| l.plain_len() as usize).sum();
        out.resize(len, 0);
        let mut at = 0;
        for (loc, _) in &self.blobs {
            let n = loc.plain_len() as usize;
            let sealed = self.slice(stored, loc)?;
            loc.decode_into(sealed, seal, unzip, scratch, &mut out[at..at + n])?;
            at += n;
        }
        Ok(out)
    }
}

/// What a dump's reader keeps from one stretch to the next: the stored bytes read, a blob's
/// decrypted bytes, and its decompression context.
struct DecodeBufs {
    stored: Vec<u8>,
    scratch: Vec<u8>,
    unzip: std::io::Result<zstd::bulk::Decompressor<'static>>,
}

/// Where a restore reads its packs from: a local repository's pack files straight into the
/// reader's own buffer, reused from one read to the next; other storage through its backend.
/// rustic's local backend returns each read in a new buffer, and with glibc's mmap threshold
/// held (main.rs) every one of them is a fresh mapping: most of a SQLite restore's page faults.
pub(super) struct Packs<'a> {
    be: &'a dyn WriteBackend,
    /// The repository's directory, when it is local.
    dir: Option<&'a Path>,
}

impl Packs<'_> {
    /// Bytes `start..start + len` of pack `pack`, read into `buf` (grown when too small,
    /// never shrunk).
    fn read<'b>(
        &self,
        pack: Hash,
        start: u64,
        len: u64,
        buf: &'b mut Vec<u8>,
    ) -> std::result::Result<&'b [u8], String> {
        let Some(dir) = self.dir else {
            let bytes = self
                .be
                .read_partial(
                    FileType::Pack,
                    &Id::new(pack),
                    false,
                    u32::try_from(start).unwrap_or(u32::MAX),
                    u32::try_from(len).unwrap_or(u32::MAX),
                )
                .map_err(|e| super::errors::one_line(&e))?;
            buf.clear();
            buf.extend_from_slice(&bytes);
            return Ok(buf);
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if buf.len() < len {
            buf.resize(len, 0);
        }
        std::fs::File::open(pack_path(dir, &pack))
            .and_then(|f| f.read_exact_at(&mut buf[..len], start))
            .map_err(|e| format!("cannot read pack {}: {e}", hex::encode(&pack[..4])))?;
        Ok(&buf[..len])
    }
}

impl Repo {
    /// This repository's packs, for reading.
    pub(super) fn packs(&self) -> Packs<'_> {
        Packs {
            be: &*self.backend,
            dir: self.local.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn an_ids_bytes_are_read_back_as_they_were_made() {
        let mut bytes = [0_u8; 32];
        for seed in 0_u8..=255 {
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = seed
                    .wrapping_mul(31)
                    .wrapping_add(i as u8)
                    .rotate_left(u32::from(seed % 8));
            }
            let id = Id::new(bytes);
            assert_eq!(hash_of(id), bytes);
            assert_eq!(hex::encode(hash_of(id)), id.to_hex().as_str());
        }
    }

    /// A tree as restic writes one: a directory, a file with three blobs, a file whose name
    /// needs escaping, an empty file with no list at all, and a file with an empty list.
    fn tree_json(third_id: &str) -> String {
        let times = r#""mtime":"2026-11-27T10:00:00.123456789+01:00","atime":"2026-11-27T10:00:01Z","ctime":"2026-11-27T10:00:02Z""#;
        let owner =
            r#""uid":1000,"gid":1000,"user":"app","group":"app","inode":7,"device_id":2049"#;
        let (a, b) = (hex::encode([0xab_u8; 32]), hex::encode([0x01_u8; 32]));
        format!(
            r#"{{"nodes":[
{{"name":"dir","type":"dir","mode":2147484141,{times},{owner},"size":0,"links":2,"content":null,"subtree":"{a}"}},
{{"name":"app.db","type":"file","mode":420,{times},{owner},"size":12288,"links":1,"content":["{a}","{b}","{third_id}"]}},
{{"name":"back\\\\slash \\\"q\\\" caf\u00e9\\xff","type":"file","mode":384,{times},{owner},"size":4096,"links":1,"content":["{b}"]}},
{{"name":"none","type":"file","mode":384,{times},{owner},"size":0,"links":1}},
{{"name":"empty","type":"file","mode":384,{times},{owner},"size":0,"links":1,"content":[]}}
]}}"#
        )
    }

    #[test]
    fn a_node_and_its_blobs_read_apart_are_what_rustic_reads_whole() {
        let json = tree_json(&hex::encode([0x5c_u8; 32]));
        let whole: rustic_core::repofile::Tree = serde_json::from_str(&json).expect("tree");
        assert_eq!(whole.nodes.len(), 5);
        for expected in whole.nodes {
            let (node, content) = node_named(json.as_bytes(), &expected.name())
                .expect("read")
                .unwrap_or_else(|| panic!("{:?} not found", expected.name()));
            assert_eq!(content, content_ids(&expected), "{:?}", expected.name());
            let mut expected = expected;
            expected.content = None;
            assert_eq!(
                serde_json::to_value(&node).expect("json"),
                serde_json::to_value(&expected).expect("json"),
            );
        }
        // The escaped name reads back as the bytes it stands for (one not UTF-8 among them).
        let odd = OsStr::from_bytes(b"back\\slash \"q\" caf\xc3\xa9\xff");
        assert!(node_named(json.as_bytes(), odd).expect("read").is_some());
        let (_, three) = node_named(json.as_bytes(), OsStr::new("app.db"))
            .expect("read")
            .expect("found");
        assert_eq!(three, [[0xab; 32], [0x01; 32], [0x5c; 32]]);
        // Names the tree does not hold, the escaped form of one among them.
        for absent in ["app", "App.db", r#"back\\slash \"q\" café\xff"#] {
            assert!(
                node_named(json.as_bytes(), OsStr::new(absent))
                    .expect("read")
                    .is_none()
            );
        }
        // A damaged id in the wanted node's list is an error, never a shorter list.
        let damaged = tree_json(&"5c".repeat(31));
        let err = node_named(damaged.as_bytes(), OsStr::new("app.db")).expect_err("damaged");
        assert!(err.contains("cannot read a tree"), "{err}");
    }
}
