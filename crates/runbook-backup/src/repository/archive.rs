//! Files targets backed up by our own pipeline, in restic's format.
//!
//! rustic_core's archiver builds the rolling-hash tables of its chunker again for every file
//! (half of all CPU time on a tree of source files, BENCHMARKS.md) and hands every file and
//! blob between threads several times. Here the tables are built once and copied, a file
//! smaller than the minimum chunk is stored as one blob without hashing it byte by byte, and
//! files are read, hashed, compressed and encrypted on every core (the pipeline of
//! [`super::pages`]). What a snapshot records stays rustic's: the same walker (rustic's
//! `LocalSource`: the same excludes, the same metadata for every node), the same chunk
//! boundaries (the same rolling hash with the repository's polynomial, cut by the same rule),
//! the same rule for unchanged files (size, mtime, ctime and inode as in the parent
//! snapshot), so a backup after one made by rustic's archiver stores only what changed.
//!
//! Writes come in restic's order: packs, then the index naming them, then the snapshot.

use std::{
    collections::{HashMap, VecDeque},
    ffi::OsStr,
    io::Read,
    path::{Component, PathBuf},
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use jiff::Zoned;
use rustic_cdc::{Rabin64, RollingHash64};
use rustic_core::{
    DataId, Excludes, Id, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, PathList,
    ReadSource, ReadSourceEntry, ReadSourceOpen, SnapshotGroup, SnapshotGroupCriterion,
    repofile::{ConfigFile, Metadata, Node, NodeType, SnapshotFile, SnapshotSummary, Tree},
};

use super::{
    BackupSpec, Repo, describe,
    errors::{guard, one_line},
    pages::{Batch, Cx, Hash, Index, Packed, Store, TreeSaver, describe_meta, sha256, tree_json},
    rolling::{Prints, WINDOW},
    stages::{Stage, Timed},
    unpack::hash_of,
    untree::Trees,
};
use crate::{Result, Snapshot};

/// Bytes a worker reads (or seals) before handing its sealed blobs to the packer.
const BATCH_BYTES: u64 = 1 << 20;

/// Bytes read from a file at once: a chunk being cut is at most the maximum chunk plus this.
pub(super) const READ_STEP: usize = 1 << 20;

/// How rustic's walker opens a file.
type Opener = <LocalSource as ReadSource>::Open;

impl Repo {
    /// Backs up the files and directories of `spec` against the target's last snapshot of the
    /// same paths. Repositories with fixed-size chunks, and backups recorded under another
    /// path, go through rustic's archiver ([`Repo::backup`]).
    pub(crate) fn backup_files(self, spec: &BackupSpec<'_>) -> Result<Snapshot> {
        let config = self.inner.config();
        if config.chunker() != rustic_core::repofile::Chunker::Rabin || spec.as_path.is_some() {
            return self.backup(spec);
        }
        let target = self.target.clone();
        guard(&target, "backup", move || self.files_inner(spec))
    }

    fn files_inner(self, spec: &BackupSpec<'_>) -> Result<Snapshot> {
        let fail = self.fail("backup");
        let store = self.store()?;
        let cutter = Cutter::new(self.inner.config()).map_err(fail)?;
        let cx = store.cx();

        let mut snap = self.new_snapshot(&spec.meta, spec.time)?;
        let source: PathList = spec.paths.iter().cloned().collect();
        let paths = source.sanitize().map_err(|e| fail(e.to_string()))?.paths();
        for p in &paths {
            let p = p
                .to_str()
                .ok_or_else(|| fail(format!("{} is not valid UTF-8", p.display())))?;
            snap.paths.add(p.to_string());
        }
        let parent = if spec.use_parent {
            self.parent_of(&snap)?
        } else {
            None
        };
        if let Some(p) = &parent {
            snap.parent = Some(p.id);
            snap.parents = vec![p.id];
        }
        let mut excludes = Excludes::default();
        excludes.globs = spec.excludes.iter().map(|g| format!("!{g}")).collect();
        let walker = |paths: &[PathBuf]| {
            LocalSource::new(
                LocalSourceSaveOptions::default(),
                &excludes,
                &LocalSourceFilterOptions::default(),
                paths,
            )
            .map_err(self.err("backup"))
        };
        let local = walker(&paths)?;
        let sizer = walker(&paths)?;

        let progress = self.inner.progress_bytes("backing up…");
        let store_start = Zoned::now();
        let store_started = Instant::now();
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let parent_root = parent.as_ref().map(|p| hash_of(*p.tree));
        let mut parents = Parents::new(&store, parent_root);
        let (file_tx, file_rx) = unbounded::<(usize, std::result::Result<Content, String>)>();
        let mut builder = Builder {
            saver: TreeSaver::new(&store, &cx).map_err(fail)?,
            summary: snap.summary.take().unwrap_or_default(),
            stack: Vec::new(),
            nodes: Vec::new(),
            pending: VecDeque::new(),
            done: HashMap::new(),
            files: file_rx,
            jobs: 0,
        };
        let (built, packed) = std::thread::scope(|s| {
            let (job_tx, job_rx) = bounded::<Job>(threads * 64);
            let (done_tx, done_rx) = bounded::<std::result::Result<Batch, String>>(threads);
            let progress = &progress;
            s.spawn(move || {
                if let Ok(Some(size)) = sizer.size() {
                    progress.set_length(size);
                }
            });
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (rx, tx, files, cx, cutter) = (
                        job_rx.clone(),
                        done_tx.clone(),
                        file_tx.clone(),
                        &cx,
                        &cutter,
                    );
                    s.spawn(move || read_files(cx, cutter, &rx, &tx, &files))
                })
                .collect();
            drop((job_rx, done_tx, file_tx));
            let packer = store.spawn_packer(s, done_rx, progress);
            let walked = walk(
                &local,
                &mut parents,
                &store.known,
                &job_tx,
                &mut builder,
                progress,
            );
            drop(job_tx);
            let built = walked.and_then(|()| builder.finish(parent_root));
            for w in workers {
                // A worker that panicked is found by the builder: its files have no result.
                let _ = w.join();
            }
            let packed = packer
                .join()
                .unwrap_or_else(|_| Err("the packer thread failed".into()));
            (built, packed)
        });
        // The first cause, not the peers that stopped because of it: storage and packing
        // (which carries a worker's failure), then the walk.
        let Packed {
            mut packs,
            mut added,
            ..
        } = packed.map_err(fail)?;
        let root = built.map_err(fail)?;
        let Builder {
            saver, mut summary, ..
        } = builder;
        saver.finish(&mut packs, &mut added).map_err(fail)?;
        store.save_index(packs).map_err(fail)?;

        snap.description = describe_meta(&store.with_stages(&spec.meta));
        snap.tree = Id::new(root).into();
        store.summarize(&mut summary, &added, store_start, store_started);
        snap.summary = Some(summary);
        store.save_snapshot(&mut snap).map_err(fail)?;
        progress.finish();
        Ok(describe(&self.target, &snap))
    }

    /// The target's latest snapshot of the same host and paths (rustic's parent rule).
    fn parent_of(&self, snap: &SnapshotFile) -> Result<Option<SnapshotFile>> {
        let group = SnapshotGroup::from_snapshot(snap, SnapshotGroupCriterion::default());
        Ok(self
            .raw_snapshots()?
            .into_iter()
            .rfind(|s| group.matches(s)))
    }
}

/// Cuts a stream into chunks exactly where rustic's Rabin chunker does: after at least the
/// minimum size, where the rolling hash of the 64 bytes before has its low bits zero (the hash
/// started afresh over the end of the minimum part, as rustic starts it), and at the maximum
/// size at the latest.
pub(super) struct Cutter {
    /// The hash with its tables built, copied for each chunk: its first 64 steps after the
    /// minimum, where rustic's window still holds bytes from before (below).
    rabin: Rabin64,
    /// The same hash, looked for at several places at a time after that, when its window
    /// holds only the stream's last 64 bytes.
    prints: Prints,
    mask: u64,
    min: usize,
    max: usize,
}

/// Why reading a file or stream stopped.
pub(super) enum Fail {
    /// The file could not be read: it is left out of the snapshot.
    Source(String),
    /// Its blobs could not be stored: the backup fails.
    Store(String),
    /// The packer stopped (its reason is reported).
    Stopped,
}

/// Where the bytes being cut come from, and where the chunks go.
pub(super) trait Feed {
    /// Reads more onto `buf`; the `start` bytes before are cut already, and may be dropped or
    /// handed on (moving `start` back). True when the stream has ended.
    fn fill(&mut self, buf: &mut Vec<u8>, start: &mut usize) -> std::result::Result<bool, Fail>;

    /// Takes the next chunk.
    fn chunk(&mut self, chunk: &[u8]) -> std::result::Result<(), Fail>;
}

/// A file being cut: each fill drops what is cut already, and each chunk goes to `each`.
struct FileFeed<'r, R, F> {
    r: &'r mut R,
    each: F,
}

impl<R: Read, F: FnMut(&[u8]) -> std::result::Result<(), Fail>> Feed for FileFeed<'_, R, F> {
    fn fill(&mut self, buf: &mut Vec<u8>, start: &mut usize) -> std::result::Result<bool, Fail> {
        if *start > 0 {
            buf.drain(..*start);
            *start = 0;
        }
        read_step(self.r, buf)
    }

    fn chunk(&mut self, chunk: &[u8]) -> std::result::Result<(), Fail> {
        (self.each)(chunk)
    }
}

/// Reads up to [`READ_STEP`] more bytes of `r` onto `buf`; true when `r` has ended.
pub(super) fn read_step(r: &mut impl Read, buf: &mut Vec<u8>) -> std::result::Result<bool, Fail> {
    buf.reserve(READ_STEP);
    let n = r
        .by_ref()
        .take(READ_STEP as u64)
        .read_to_end(buf)
        .map_err(|e| Fail::Source(e.to_string()))?;
    Ok(n < READ_STEP)
}

impl Cutter {
    pub(super) fn new(config: &ConfigFile) -> std::result::Result<Self, String> {
        let poly = config.poly().map_err(|e| one_line(&e))?;
        let size = config.chunk_size();
        let (min, max) = (config.chunk_min_size(), config.chunk_max_size());
        if !size.is_power_of_two() || min > size || max < size || min < 64 {
            return Err("the repository's chunk sizes are not valid for content chunks".into());
        }
        if !Prints::serves(&poly) {
            return Err("the repository's chunker polynomial is not of a usable degree".into());
        }
        Ok(Self {
            rabin: Rabin64::new_with_polynom(6, &poly),
            prints: Prints::new(&poly),
            mask: size as u64 - 1,
            min,
            max,
        })
    }

    /// Reads `r` to its end (through `buf`, reused between files) and calls `each` with every
    /// chunk in order; returns the stream's length.
    fn cut(
        &self,
        r: &mut impl Read,
        buf: &mut Vec<u8>,
        each: impl FnMut(&[u8]) -> std::result::Result<(), Fail>,
    ) -> std::result::Result<u64, Fail> {
        buf.clear();
        self.cut_feed(buf, &mut FileFeed { r, each })
    }

    /// Cuts what `feed` reads onto `buf` (empty, or holding what is still to be cut) into
    /// chunks, handing each to `feed` in order; returns the length cut.
    pub(super) fn cut_feed(
        &self,
        buf: &mut Vec<u8>,
        feed: &mut impl Feed,
    ) -> std::result::Result<u64, Fail> {
        let (mut start, mut eof, mut total) = (0, false, 0_u64);
        loop {
            while !eof && buf.len() - start < self.min {
                eof = feed.fill(buf, &mut start)?;
            }
            let have = buf.len() - start;
            if have < self.min {
                // The rest is shorter than the minimum chunk: one chunk, no hashing.
                if have > 0 {
                    feed.chunk(&buf[start..])?;
                }
                return Ok(total + have as u64);
            }
            let mut rabin = self.rabin.clone();
            let from = start + self.min;
            rabin.reset_and_prefill_window(&mut buf[from - WINDOW..from].iter().copied());
            let mut len = self.min;
            let mut cut = rabin.hash & self.mask == 0;
            loop {
                let limit = (start + self.max).min(buf.len());
                let mut i = start + len;
                // rustic's window skips the minimum part's last byte (it prefills 63 of the
                // 64 it is given), so for its first 64 steps it is rustic's hash that counts;
                // after them its window is the stream's last 64 bytes, which `prints` hashes.
                while !cut && i < limit && i - start < self.min + WINDOW {
                    rabin.slide(buf[i]);
                    i += 1;
                    cut = rabin.hash & self.mask == 0;
                }
                if !cut && i < limit {
                    match self.prints.find(&buf[i - WINDOW..limit], self.mask) {
                        Some(at) => {
                            i += at + 1;
                            cut = true;
                        }
                        None => i = limit,
                    }
                }
                len = i - start;
                if len >= self.max || cut || eof {
                    break;
                }
                eof = feed.fill(buf, &mut start)?;
            }
            feed.chunk(&buf[start..start + len])?;
            total += len as u64;
            start += len;
        }
    }
}

/// A file to read: its number in the walk, its path, and how rustic's walker opens it.
struct Job {
    seq: usize,
    path: PathBuf,
    open: Opener,
}

/// A file as read: its chunks' ids and its length.
struct Content {
    ids: Vec<Hash>,
    size: u64,
}

/// One worker: reads each file it is given, cuts it into chunks, and seals the chunks the
/// repository lacks; reports each file's content (or why it could not be read) on `files`.
fn read_files(
    cx: &Cx<'_>,
    cutter: &Cutter,
    rx: &Receiver<Job>,
    tx: &Sender<std::result::Result<Batch, String>>,
    files: &Sender<(usize, std::result::Result<Content, String>)>,
) {
    let mut blobber = match cx.blobber() {
        Ok(b) => b,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let mut buf = Vec::new();
    let mut batch = Batch::default();
    let mut held = 0_u64;
    for job in rx {
        let started = Instant::now();
        // This file's share of `source` (opening and reading it) and the time spent waiting
        // for the packer to take a batch: the rest of its time is `chunk`.
        let mut source = Duration::ZERO;
        let mut waited = Duration::ZERO;
        let mut ids = Vec::new();
        let each = |chunk: &[u8]| -> std::result::Result<(), Fail> {
            let id = sha256(chunk);
            ids.push(id);
            batch.bytes += chunk.len() as u64;
            if !cx.known.data.contains_key(&id)
                && cx
                    .fresh
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id)
            {
                let sealed = blobber.blob(id, chunk).map_err(Fail::Store)?;
                held += sealed.data.len() as u64;
                batch.new.push(sealed);
            }
            if held.max(batch.bytes) >= BATCH_BYTES {
                held = 0;
                let sending = Instant::now();
                let sent = tx.send(Ok(std::mem::take(&mut batch)));
                waited += sending.elapsed();
                sent.map_err(|_| Fail::Stopped)?;
            }
            Ok(())
        };
        let read = job
            .open
            .open()
            .map_err(|e| Fail::Source(one_line(&e)))
            .and_then(|f| {
                source = started.elapsed();
                let mut f = Timed::new(f);
                let cut = cutter.cut(&mut f, &mut buf, each);
                source += f.spent();
                cut
            });
        cx.stages.add(Stage::Source, source);
        cx.stages.add(
            Stage::Chunk,
            started.elapsed().saturating_sub(source + waited),
        );
        let out = match read {
            Ok(size) => Ok(Content { ids, size }),
            Err(Fail::Source(e)) => Err(format!("{}: {e}", job.path.display())),
            Err(Fail::Store(e)) => {
                let _ = tx.send(Err(e));
                return;
            }
            Err(Fail::Stopped) => return,
        };
        if files.send((job.seq, out)).is_err() {
            return;
        }
    }
    if batch.bytes > 0 || !batch.new.is_empty() {
        let _ = tx.send(Ok(batch));
    }
}

/// How an entry compares with the parent snapshot.
enum Found<T> {
    /// As in the parent (for a directory: the parent's tree id).
    Same(T),
    /// The parent has it, changed.
    Changed,
    /// The parent does not have it.
    New,
}

/// One step of the walk, for the trees: applied in order, each once the files before it are
/// read.
enum Event {
    /// A directory begins.
    Enter { node: Node, found: Found<Hash> },
    /// The directory last begun ends.
    Leave,
    /// An entry of the current directory; a file being read has its number.
    Entry {
        node: Node,
        found: Found<()>,
        job: Option<usize>,
    },
}

/// The parent snapshot's trees along the walk: the tree of the current directory with a
/// cursor (names come sorted in both), and those of the directories above.
struct Parents<'a> {
    trees: Trees<'a>,
    current: Option<(Tree, usize)>,
    stack: Vec<Option<(Tree, usize)>>,
}

impl<'a> Parents<'a> {
    fn new(store: &'a Store<'_>, root: Option<Hash>) -> Self {
        let mut trees = Trees::new(store.be, &store.seal, &store.known);
        let current = root.and_then(|id| load(&mut trees, id)).map(|t| (t, 0));
        Self {
            trees,
            current,
            stack: Vec::new(),
        }
    }

    /// The parent's node named `name` in the current directory.
    fn node(&mut self, name: &OsStr) -> Option<&Node> {
        let (tree, at) = self.current.as_mut()?;
        while let Some(n) = tree.nodes.get(*at) {
            match (*n.name()).cmp(name) {
                std::cmp::Ordering::Less => *at += 1,
                std::cmp::Ordering::Equal => return tree.nodes.get(*at),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// How `node` compares with the parent's (rustic's rule: same type, size, mtime, and
    /// ctime where both have one).
    fn compare(&mut self, node: &Node) -> Found<&Node> {
        let Some(p) = self.node(&node.name()) else {
            return Found::New;
        };
        let same_ctime = p
            .meta
            .ctime
            .zip(node.meta.ctime)
            .is_none_or(|(a, b)| a == b);
        if p.node_type == node.node_type
            && p.meta.size == node.meta.size
            && p.meta.mtime == node.meta.mtime
            && same_ctime
        {
            Found::Same(p)
        } else {
            Found::Changed
        }
    }

    /// Enters the directory `name`: its parent tree, if the parent has one, becomes current.
    fn enter(&mut self, name: &OsStr) {
        let sub = self.node(name).and_then(|n| n.subtree).map(|t| hash_of(*t));
        let next = sub.and_then(|id| load(&mut self.trees, id)).map(|t| (t, 0));
        self.stack.push(std::mem::replace(&mut self.current, next));
    }

    fn leave(&mut self) {
        self.current = self.stack.pop().flatten();
    }
}

/// A tree of the parent, or nothing (with a warning) when it cannot be read: the files under
/// it are then read again.
fn load(trees: &mut Trees<'_>, id: Hash) -> Option<Tree> {
    trees
        .get(id)
        .map_err(|e| log::warn!("ignoring error reading the parent snapshot: {e}"))
        .ok()
}

/// Walks the source with rustic's walker, compares each entry with the parent, hands the
/// files to read to the workers, and hands the walk to `builder`.
fn walk(
    source: &LocalSource,
    parents: &mut Parents<'_>,
    known: &Index<()>,
    jobs: &Sender<Job>,
    builder: &mut Builder<'_>,
    progress: &rustic_core::Progress,
) -> std::result::Result<(), String> {
    // The directory the walk is in, as a path in the snapshot.
    let mut cwd = PathBuf::new();
    for entry in source.entries() {
        let ReadSourceEntry { path, node, open } = match entry {
            Ok(e) => e,
            Err(e) => {
                log::warn!("ignoring error: {}", one_line(&e));
                continue;
            }
        };
        let dir = if node.is_dir() {
            path.clone()
        } else {
            match path.parent() {
                Some(p) => p.to_path_buf(),
                None => continue,
            }
        };
        while !dir.starts_with(&cwd) {
            if !pop(&mut cwd) {
                break;
            }
            parents.leave();
            builder.push(Event::Leave)?;
        }
        // Enter the directories between: the entry's own, when it is one, with its metadata;
        // the others (above a backed-up path) as rustic records them, mode 0755.
        let mut node = Some(node);
        let missing: Vec<Component<'_>> = dir
            .strip_prefix(&cwd)
            .map(|rest| rest.components().collect())
            .unwrap_or_default();
        for comp in missing {
            cwd.push(comp);
            let Component::Normal(name) = comp else {
                continue;
            };
            let dir_node = match node.take_if(|n| n.is_dir() && cwd == path) {
                Some(n) => n,
                None => Node::new_node(
                    name,
                    NodeType::Dir,
                    Metadata {
                        mode: Some(0o755),
                        ..Default::default()
                    },
                ),
            };
            let found = match parents.compare(&dir_node) {
                Found::Same(p) => p
                    .subtree
                    .map_or(Found::Changed, |t| Found::Same(hash_of(*t))),
                Found::Changed => Found::Changed,
                Found::New => Found::New,
            };
            parents.enter(name);
            builder.push(Event::Enter {
                node: dir_node,
                found,
            })?;
        }
        let Some(mut node) = node else {
            continue;
        };
        let found = match parents.compare(&node) {
            Found::Same(p) if node.is_file() => {
                if p.content
                    .iter()
                    .flatten()
                    .all(|id| known.data.contains_key(&hash_of(**id)))
                {
                    node.content.clone_from(&p.content);
                    Found::Same(())
                } else {
                    log::warn!(
                        "missing blobs in index for unchanged file {}; re-reading file",
                        path.display()
                    );
                    Found::New
                }
            }
            Found::Same(_) => Found::Same(()),
            Found::Changed => Found::Changed,
            Found::New => Found::New,
        };
        let mut job = None;
        if node.is_file() && !matches!(found, Found::Same(())) {
            let Some(open) = open else {
                log::warn!("ignoring error: {} cannot be opened", path.display());
                continue;
            };
            let seq = builder.jobs;
            builder.jobs += 1;
            jobs.send(Job {
                seq,
                path: cwd.join(node.name()),
                open,
            })
            .map_err(|_| "the backup stopped".to_string())?;
            job = Some(seq);
        } else if node.is_file() {
            progress.inc(node.meta.size);
        }
        builder.push(Event::Entry { node, found, job })?;
    }
    while pop(&mut cwd) {
        parents.leave();
        builder.push(Event::Leave)?;
    }
    Ok(())
}

/// Leaves the innermost directory of `path` (skipping `/` and `.`); false when there is none.
fn pop(path: &mut PathBuf) -> bool {
    let mut comps = path.components();
    while let Some(c) = comps.next_back() {
        if matches!(c, Component::Normal(_) | Component::Prefix(_)) {
            *path = comps.collect();
            return true;
        }
    }
    false
}

/// Builds and stores the trees while the walk goes on: the walk's events are applied in
/// order as soon as the files before them are read, so only the files in flight and the
/// directories open above them are held, not the whole tree.
struct Builder<'a> {
    saver: TreeSaver<'a>,
    summary: SnapshotSummary,
    /// The open directories: each one's node, how it compares, and its parent's entries so far.
    stack: Vec<(Node, Found<Hash>, Vec<Node>)>,
    /// The entries of the innermost open directory so far.
    nodes: Vec<Node>,
    /// Events waiting for a file before them to be read.
    pending: VecDeque<Event>,
    /// Files read whose events are still pending.
    done: HashMap<usize, std::result::Result<Content, String>>,
    files: Receiver<(usize, std::result::Result<Content, String>)>,
    /// How many files were handed to the workers.
    jobs: usize,
}

impl Builder<'_> {
    fn push(&mut self, event: Event) -> std::result::Result<(), String> {
        self.pending.push_back(event);
        self.settle(false)
    }

    /// Applies the pending events whose files are read; with `wait`, waits for the files
    /// still being read until none is pending.
    fn settle(&mut self, wait: bool) -> std::result::Result<(), String> {
        while let Ok((seq, read)) = self.files.try_recv() {
            self.done.insert(seq, read);
        }
        while let Some(event) = self.pending.front() {
            if let Event::Entry { job: Some(seq), .. } = event
                && !self.done.contains_key(seq)
            {
                if !wait {
                    return Ok(());
                }
                let (seq, read) = self
                    .files
                    .recv()
                    .map_err(|_| "a file read for the backup has no result".to_string())?;
                self.done.insert(seq, read);
                continue;
            }
            if let Some(event) = self.pending.pop_front() {
                self.apply(event)?;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Event) -> std::result::Result<(), String> {
        match event {
            Event::Enter { node, found } => {
                self.stack
                    .push((node, found, std::mem::take(&mut self.nodes)));
            }
            Event::Leave => {
                let (mut node, found, outer) = self
                    .stack
                    .pop()
                    .ok_or("the walk left a directory it had not entered")?;
                let nodes = std::mem::replace(&mut self.nodes, outer);
                let id = save_tree(nodes, &found, &mut self.saver, &mut self.summary)?;
                node.subtree = Some(Id::new(id).into());
                self.nodes.push(node);
            }
            Event::Entry {
                mut node,
                found,
                job,
            } => {
                let size = match job.map(|seq| self.done.remove(&seq)) {
                    Some(Some(Ok(c))) => {
                        let ids = c.ids.into_iter().map(|h| DataId::from(Id::new(h)));
                        node.content = Some(ids.collect());
                        node.meta.size = c.size;
                        c.size
                    }
                    Some(Some(Err(e))) => {
                        log::warn!("ignoring error: {e}");
                        return Ok(());
                    }
                    Some(None) => return Err("a file read for the backup has no result".into()),
                    None if matches!(found, Found::Same(())) => node.meta.size,
                    None => 0,
                };
                let s = &mut self.summary;
                match found {
                    Found::Same(()) => s.files_unmodified += 1,
                    Found::Changed => s.files_changed += 1,
                    Found::New => s.files_new += 1,
                }
                s.total_files_processed += 1;
                s.total_bytes_processed += size;
                self.nodes.push(node);
            }
        }
        Ok(())
    }

    /// Waits for the last files, stores the last trees, and returns the root tree's id.
    fn finish(&mut self, parent_root: Option<Hash>) -> std::result::Result<Hash, String> {
        self.settle(true)?;
        if !self.stack.is_empty() {
            return Err("the walk ended inside a directory".into());
        }
        let root = parent_root.map_or(Found::New, Found::Same);
        let nodes = std::mem::take(&mut self.nodes);
        save_tree(nodes, &root, &mut self.saver, &mut self.summary)
    }
}

/// Stores one directory's tree (unless the repository has it) and counts it as rustic does.
fn save_tree(
    nodes: Vec<Node>,
    found: &Found<Hash>,
    saver: &mut TreeSaver<'_>,
    summary: &mut SnapshotSummary,
) -> std::result::Result<Hash, String> {
    let (id, bytes) = tree_json(&Tree { nodes })?;
    summary.total_dirs_processed += 1;
    summary.total_dirsize_processed += bytes.len() as u64;
    match found {
        Found::Same(p) if *p == id => summary.dirs_unmodified += 1,
        Found::New => summary.dirs_new += 1,
        _ => summary.dirs_changed += 1,
    }
    saver.add(id, &bytes)?;
    Ok(id)
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use runbook_config::RepositoryConfig;
    use rustic_core::{FileType, ReadBackend};
    use secrecy::SecretString;

    use super::*;
    use crate::{
        repository::{Chunking, StreamFile, seal::Seal},
        snapshot::Meta,
    };

    /// Bytes that do not compress or repeat.
    pub(in crate::repository) fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Every entry of a snapshot: its type, size and content.
    fn entries(repo: &Repo, snapshot: &str) -> BTreeMap<PathBuf, (String, u64, Vec<Hash>)> {
        let snap = repo.find_raw(snapshot).expect("snapshot");
        let seal = Seal::new(&repo.inner.key()).expect("key");
        let index = Index::<()>::read(&*repo.backend, &seal).expect("index");
        let mut trees = Trees::new(&*repo.backend, &seal, &index);
        let mut out = BTreeMap::new();
        let mut todo = vec![(PathBuf::new(), hash_of(*snap.tree))];
        while let Some((dir, id)) = todo.pop() {
            for node in trees.get(id).expect("tree").nodes {
                let path = dir.join(node.name());
                if let Some(sub) = node.subtree {
                    todo.push((path.clone(), hash_of(*sub)));
                }
                let content = node
                    .content
                    .iter()
                    .flatten()
                    .map(|i| hash_of(**i))
                    .collect();
                let kind = format!("{:?}", node.node_type);
                out.insert(path, (kind, node.meta.size, content));
            }
        }
        out
    }

    struct Setup {
        _dir: tempfile::TempDir,
        location: RepositoryConfig,
        src: PathBuf,
        password: SecretString,
    }

    impl Setup {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tmp");
            let src = dir.path().join("src");
            std::fs::create_dir_all(src.join("a/b")).expect("mkdir");
            let location = RepositoryConfig {
                path: dir.path().join("repo"),
                password_file: dir.path().join("unused"),
                s3: None,
            };
            Self {
                _dir: dir,
                location,
                src,
                password: SecretString::from("a password"),
            }
        }

        fn repo(&self) -> Repo {
            Repo::open(
                &self.location,
                "files",
                &self.password,
                Some(Chunking::Content),
            )
            .expect("repository")
        }

        /// Backs up the source with rustic's archiver (`ours` false) or runbook's.
        fn backup(&self, ours: bool, use_parent: bool) -> String {
            let paths = [self.src.clone()];
            let spec = BackupSpec {
                paths: &paths,
                as_path: None,
                excludes: &["*.skip".to_string()],
                use_parent,
                meta: Meta::default(),
                time: None,
            };
            let repo = self.repo();
            let snap = if ours {
                repo.backup_files(&spec)
            } else {
                repo.backup(&spec)
            };
            snap.expect("backup").id
        }

        fn write(&self, rel: &str, bytes: &[u8]) {
            std::fs::write(self.src.join(rel), bytes).expect("write");
        }

        /// Restores `snapshot` with stock restic; returns where to.
        fn restic_restore(&self, snapshot: &str) -> PathBuf {
            let out = self._dir.path().join("restored-by-restic");
            let status = std::process::Command::new("restic")
                .args(["--no-lock", "-q", "-r"])
                .arg(self.location.path.join("files"))
                .args(["restore", snapshot, "--target"])
                .arg(&out)
                .env("RESTIC_PASSWORD", "a password")
                .status()
                .expect("run restic");
            assert!(status.success(), "restic restore: {status}");
            out
        }
    }

    fn summary(repo: &Repo, id: &str) -> SnapshotSummary {
        repo.find_raw(id)
            .expect("snapshot")
            .summary
            .expect("summary")
    }

    /// The same source backed up by rustic's archiver and by runbook's gives the same entries
    /// with the same chunks, so each deduplicates against the other; the edge cases of the
    /// chunker are all there (below, at and above the minimum chunk; runs of zeros that cut at
    /// the minimum; a file longer than several maximum chunks).
    #[test]
    fn files_are_cut_and_recorded_as_rustics_archiver_does() {
        let s = Setup::new();
        let min = 512 << 10;
        s.write("big.bin", &noise(27 << 20, 1));
        s.write("a/exactly-min", &noise(min, 2));
        s.write("a/min-plus-one", &noise(min + 1, 3));
        s.write("a/below-min", &noise(min - 1, 4));
        s.write("a/b/zeros", &vec![0; 3 * min + 100]);
        s.write("a/b/empty", b"");
        s.write("a/b/small.txt", b"small");
        s.write("left.skip", b"excluded");
        std::os::unix::fs::symlink("../big.bin", s.src.join("a/link")).expect("symlink");

        let theirs = s.backup(false, false);
        let ours = s.backup(true, false);
        let repo = s.repo();
        let (a, b) = (entries(&repo, &theirs), entries(&repo, &ours));
        assert_eq!(a, b);
        assert!(!b.keys().any(|p| p.ends_with("left.skip")), "{b:?}");
        let big = b
            .iter()
            .find(|(p, _)| p.ends_with("big.bin"))
            .expect("big.bin");
        assert!(big.1.2.len() > 4, "{:?}", big.1.2.len());
        // Nothing new: every chunk was already stored by rustic's archiver.
        assert_eq!(summary(&repo, &ours).data_blobs, 0);
    }

    /// Hands its bytes over a few KiB at a time, as a pipe may.
    struct Trickle(std::io::Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3000);
            self.0.read(&mut buf[..n])
        }
    }

    /// Backs `bytes` up as a stream recorded at `path`, handed over a few KiB at a time;
    /// the snapshot's id.
    fn stream_in(s: &Setup, path: &std::path::Path, bytes: &[u8]) -> String {
        let file = StreamFile {
            path,
            mode: 0o600,
            size: None,
        };
        let reader = Trickle(std::io::Cursor::new(bytes.to_vec()));
        s.repo()
            .backup_stream(reader, file, Meta::default(), None)
            .expect("stream backup")
            .id
    }

    /// A source that keeps the backup waiting (a dump tool slower than the pipeline) shows as
    /// `source` in the stages the snapshot records, and the stages are stored with it.
    #[test]
    fn a_slow_source_shows_as_the_stage_that_held_the_backup_up() {
        /// Hands over up to 256 KiB a read, each after 60 ms.
        struct Slow(std::io::Cursor<Vec<u8>>);
        impl Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_millis(60));
                let n = buf.len().min(256 << 10);
                self.0.read(&mut buf[..n])
            }
        }
        let s = Setup::new();
        let path = s.src.join("slow.dump");
        let file = StreamFile {
            path: &path,
            mode: 0o600,
            size: None,
        };
        // Eight reads of data and one of the end: 0.54 s or more.
        let reader = Slow(std::io::Cursor::new(noise(2 << 20, 4)));
        let snap = s
            .repo()
            .backup_stream(reader, file, Meta::default(), None)
            .expect("stream backup");
        let stages = &snap.stages;
        assert_eq!(
            stages.keys().map(String::as_str).collect::<Vec<_>>(),
            ["chunk", "source", "upload"],
            "{snap:?}"
        );
        assert!(stages["source"] >= 0.54, "{stages:?}");
        // One thread reads the source: its waits lie within the phase they belong to.
        assert!(stages["source"] <= snap.phases["store"] + 0.01, "{snap:?}");
        assert!(
            stages["chunk"] > 0.0 && stages["upload"] > 0.0,
            "{stages:?}"
        );
        let listed = s.repo().snapshots().expect("snapshots");
        assert_eq!(listed.last().map(|l| &l.stages), Some(stages));
    }

    /// A stream (a database dump) is cut where rustic's archiver cuts the same bytes read
    /// from a file, however the reader hands them over, so a dump deduplicates against one
    /// stored before; stock restic restores it byte-identical.
    #[test]
    fn streams_are_cut_where_rustics_archiver_cuts_the_same_file() {
        let s = Setup::new();
        let min = 512 << 10;
        let mut bytes = noise(13 << 20, 7);
        bytes.extend(vec![0; 3 * min + 100]);
        bytes.extend(noise(5 << 20, 8));
        // A run the chunker finds no cut in: chunks of the maximum size, longer than a
        // piece's buffer, which grows for them and goes back to the reader shrunk.
        bytes.extend(vec![0x5a; 17 << 20]);
        bytes.extend(noise(3 << 20, 10));
        bytes.extend(noise(min - 1, 9));
        s.write("a/b/app.dump", &bytes);
        let theirs = s.backup(false, false);

        let path = s.src.join("a/b/app.dump");
        let ours = stream_in(&s, &path, &bytes);
        let repo = s.repo();
        let (a, b) = (entries(&repo, &theirs), entries(&repo, &ours));
        let dump = |e: &BTreeMap<PathBuf, (String, u64, Vec<Hash>)>| {
            e.iter()
                .find(|(p, _)| p.ends_with("app.dump"))
                .map(|(_, v)| v.clone())
                .expect("the dump")
        };
        let (theirs_dump, ours_dump) = (dump(&a), dump(&b));
        assert_eq!(ours_dump, theirs_dump);
        assert!(ours_dump.2.len() > 8, "{} chunks", ours_dump.2.len());
        // Nothing new: every chunk was already stored by rustic's archiver.
        assert_eq!(summary(&repo, &ours).data_blobs, 0);

        let out = s.restic_restore(&ours);
        let restored = std::fs::read(out.join(path.strip_prefix("/").expect("absolute")))
            .expect("restored by restic");
        assert!(restored == bytes, "the restored dump differs");
    }

    /// A dump restored through `dump_to` is the bytes that were stored, over many stretches
    /// of different lengths: each stretch's buffer is one the writer handed back, so a
    /// shorter stretch after a longer one must send on only what it decoded.
    #[test]
    fn a_stream_is_dumped_back_byte_for_byte_across_reused_buffers() {
        let s = Setup::new();
        let min = 512 << 10;
        let mut bytes = Vec::new();
        for (i, len) in [9 << 20, min - 1, 3 << 20, 100, 6 << 20, min + 7, 1 << 20]
            .into_iter()
            .enumerate()
        {
            bytes.extend(noise(len, 40 + i as u64));
            bytes.extend(vec![b' '; (i + 1) * (300 << 10)]);
        }
        let path = s.src.join("db.dump");
        let id = stream_in(&s, &path, &bytes);
        let mut out = Vec::new();
        s.repo()
            .dump_to(&id, path.to_str().expect("utf-8 path"), &mut out)
            .expect("dump");
        assert_eq!(out.len(), bytes.len());
        assert!(out == bytes, "the dumped bytes differ");
    }

    /// A backup writes an index file whenever its packs name enough blobs, not one at the
    /// end; the index is read back whole (the second backup stores nothing), rustic_core's
    /// check, which reads every index file itself, finds every blob of both snapshots, and
    /// stock restic restores every file.
    #[test]
    fn index_files_are_written_as_packs_fill_and_read_back_whole() {
        let s = Setup::new();
        for i in 0..120 {
            s.write(&format!("a/f{i}"), &noise(200 << 10, 1001 + 2 * i));
        }
        let first = s.backup(true, false);
        let repo = s.repo();
        let sum = summary(&repo, &first);
        assert!(sum.data_blobs >= 120, "{sum:?}");
        let indexes = repo
            .backend
            .list(FileType::Index)
            .expect("list indexes")
            .len();
        let packs = repo.backend.list(FileType::Pack).expect("list packs").len();
        assert!(
            indexes >= 2 && packs >= 3,
            "{indexes} index files for {packs} packs"
        );
        let seal = Seal::new(&repo.inner.key()).expect("key");
        let index = Index::<()>::read(&*repo.backend, &seal).expect("index");
        assert_eq!(index.data.len() as u64, sum.data_blobs);

        // The packs were filled in files of their own, each renamed once complete: none is
        // left half-written.
        let mut left = Vec::new();
        let mut dirs = vec![s.location.path.join("files")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
                if entry.path().is_dir() {
                    dirs.push(entry.path());
                } else if entry.file_name().to_string_lossy().ends_with("-tmp-") {
                    left.push(entry.path());
                }
            }
        }
        assert!(left.is_empty(), "{left:?}");

        let second = s.backup(true, false);
        let repo = s.repo();
        assert_eq!(summary(&repo, &second).data_blobs, 0);
        let report = repo.check(Some("all")).expect("check");
        assert!(report.errors.is_empty(), "{:?}", report.errors);

        // Stock restic reads the index files too: it restores every file as it was.
        let out = s.restic_restore(&second);
        let inside = out.join(s.src.strip_prefix("/").expect("an absolute source"));
        for i in 0..120 {
            let rel = format!("a/f{i}");
            let restored = std::fs::read(inside.join(&rel)).expect("restored by restic");
            assert!(
                restored == std::fs::read(s.src.join(&rel)).expect("source"),
                "{rel}"
            );
        }
    }

    /// A backup against its parent reads only what changed, and says so in its summary; a
    /// file that cannot be read is left out and the backup still succeeds.
    #[test]
    fn unchanged_files_are_taken_from_the_parent_and_changed_ones_read_again() {
        let s = Setup::new();
        s.write("a/one.txt", &noise(100_000, 5));
        s.write("a/b/two.bin", &noise(3 << 20, 6));
        s.write("three.txt", b"three");
        let first = s.backup(true, true);
        let repo = s.repo();
        let sum = summary(&repo, &first);
        assert_eq!((sum.files_new, sum.files_unmodified), (3, 0));
        assert!(sum.data_blobs >= 3, "{sum:?}");

        let second = s.backup(true, true);
        let repo = s.repo();
        let sum = summary(&repo, &second);
        assert_eq!(
            (sum.files_new, sum.files_changed, sum.files_unmodified),
            (0, 0, 3)
        );
        assert_eq!((sum.data_blobs, sum.tree_blobs), (0, 0));
        assert_eq!(entries(&repo, &first), entries(&repo, &second));

        s.write("three.txt", b"three, longer");
        s.write("four.txt", b"four");
        let unreadable = s.src.join("a/b/locked");
        std::fs::write(&unreadable, b"secret").expect("write");
        std::fs::set_permissions(
            &unreadable,
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .expect("chmod");
        let root = rustix::process::geteuid().is_root();
        let third = s.backup(true, true);
        let repo = s.repo();
        let sum = summary(&repo, &third);
        let locked = usize::from(root);
        assert_eq!(
            (
                sum.files_new as usize,
                sum.files_changed,
                sum.files_unmodified
            ),
            (1 + locked, 1, 2)
        );
        let found = entries(&repo, &third);
        assert_eq!(found.keys().any(|p| p.ends_with("locked")), root);
        let three = found
            .iter()
            .find(|(p, _)| p.ends_with("three.txt"))
            .expect("three.txt");
        assert_eq!(three.1.1, 13);
        assert_eq!(three.1.2, vec![sha256(b"three, longer")]);
    }
}
