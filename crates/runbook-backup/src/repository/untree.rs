//! A whole snapshot tree restored straight from the packs, the way `unpack` restores one file:
//! the trees are walked first (directories, symlinks and special files made, every regular file
//! created at its size), then each stretch of a pack is read once, its blobs decoded on every
//! core and written into the files they belong to, one write per run of consecutive bytes. A
//! file gets its mode, times and owner when its last byte is written; directories get theirs
//! at the end, deepest first.
//!
//! Memory is the plan (a few dozen bytes per blob and per file), the trees being read, and a
//! stretch per worker. rustic_core's restore, used before, queued every decoded blob for a
//! pool of twenty writers and held a gigabyte on a tree of 68,000 source files.

use std::{
    collections::HashMap,
    fs::{File, FileTimes, OpenOptions},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use rustic_core::{
    FileType, Id, WriteBackend,
    repofile::{Node, NodeType, Tree},
};

use super::{
    Repo, guard,
    pages::{Hash, IdMap, Index, Loc},
    seal::Seal,
    unpack::{STRETCH, Sink, Wanted, content_ids, hash_of, restore_stretches},
};
use crate::Result;

/// The most tree bytes kept in memory while walking: the tree parts of packs, each read once.
const TREE_CACHE: u64 = 64 << 20;

impl Repo {
    /// Restores the whole tree of snapshot `id` into the directory `dest` (made if missing;
    /// nothing in it may have the names the snapshot's entries have).
    pub(crate) fn restore_tree(self, id: &str, dest: &Path) -> Result<()> {
        let target = self.target.clone();
        guard(&target, "restore", move || {
            self.restore_tree_inner(id, dest)
        })
    }

    fn restore_tree_inner(self, id: &str, dest: &Path) -> Result<()> {
        let fail = self.fail("restore");
        let snap = self.find_raw(id)?;
        let seal = Seal::new(&self.inner.key()).map_err(fail)?;
        let be: &dyn WriteBackend = &*self.backend;
        let index = Index::read(be, &seal).map_err(fail)?;
        std::fs::create_dir_all(dest)
            .map_err(|e| fail(format!("cannot create {}: {e}", dest.display())))?;
        let mut walk = Walk {
            trees: Trees::new(be, &seal, &index),
            index: &index,
            root: rustix::process::geteuid().is_root(),
            files: Vec::new(),
            dirs: Vec::new(),
            wanted: Wanted::new(&index),
            size: 0,
        };
        walk.tree(hash_of(*snap.tree), dest).map_err(fail)?;
        let Walk {
            files,
            dirs,
            wanted,
            size,
            ..
        } = walk;
        let stretches = wanted.stretches(STRETCH);
        let progress = self.inner.progress_bytes("restoring…");
        progress.set_length(size);
        restore_stretches(self.packs(), &seal, &stretches, &Files(files), &progress)
            .map_err(fail)?;
        progress.finish();
        // Every file got its metadata with its last byte; the directories last, deepest first
        // (a directory's times change while its entries are made).
        for (path, meta) in dirs.iter().rev() {
            File::open(path)
                .map_err(|e| e.to_string())
                .and_then(|f| meta.apply(&f))
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }
}

/// The walk of a snapshot's trees: what it made, and what is left to write.
struct Walk<'a> {
    trees: Trees<'a>,
    index: &'a Index,
    /// Running as root: owners are restored too.
    root: bool,
    files: Vec<Out>,
    dirs: Vec<(PathBuf, Meta)>,
    wanted: Wanted,
    size: u64,
}

impl Walk<'_> {
    /// Makes the entries of tree `id` inside the existing directory `dir`.
    fn tree(&mut self, id: Hash, dir: &Path) -> std::result::Result<(), String> {
        let tree = self.trees.get(id)?;
        for node in tree.nodes {
            let name = node.name();
            let raw = name.as_encoded_bytes();
            if raw.is_empty() || raw == b"." || raw == b".." || raw.contains(&b'/') {
                return Err(format!(
                    "{}: a tree holds the entry name {name:?}",
                    super::DAMAGED
                ));
            }
            let path = dir.join(&name);
            let shown = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
            self.node(&node, &path).map_err(|e| shown(&e))?;
            if let Some(subtree) = node.subtree.filter(|_| node.is_dir()) {
                self.tree(hash_of(*subtree), &path)?;
            }
        }
        Ok(())
    }

    /// Makes the one entry `node` at `path` (a directory's entries are made after it).
    fn node(&mut self, node: &Node, path: &Path) -> std::result::Result<(), String> {
        let meta = Meta::of(node, self.root);
        let mode = meta.mode.unwrap_or(0o644);
        match &node.node_type {
            NodeType::Dir => {
                std::fs::create_dir(path).map_err(|e| e.to_string())?;
                self.dirs.push((path.to_path_buf(), meta));
            }
            NodeType::File => {
                let ids = content_ids(node);
                let number = u32::try_from(self.files.len())
                    .map_err(|_| "more than 4 billion files".to_string())?;
                let size = self.wanted.add(self.index, number, &ids)?;
                if size != node.meta.size {
                    return Err(format!(
                        "the snapshot records {} bytes but its blobs hold {size}",
                        node.meta.size
                    ));
                }
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| e.to_string())?;
                if size == 0 {
                    return meta.apply(&file);
                }
                file.set_len(size).map_err(|e| e.to_string())?;
                self.size += size;
                self.files.push(Out {
                    path: path.to_path_buf(),
                    left: AtomicU64::new(size),
                    meta,
                });
            }
            NodeType::Symlink { .. } => {
                std::os::unix::fs::symlink(node.node_type.to_link(), path)
                    .map_err(|e| e.to_string())?;
                meta.apply_link(path)?;
            }
            NodeType::Fifo | NodeType::Socket | NodeType::Dev { .. } | NodeType::Chardev { .. } => {
                use rustix::fs::FileType as T;
                let (kind, device) = match node.node_type {
                    NodeType::Dev { device } => (T::BlockDevice, device),
                    NodeType::Chardev { device } => (T::CharacterDevice, device),
                    NodeType::Socket => (T::Socket, 0),
                    _ => (T::Fifo, 0),
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    path,
                    kind,
                    rustix::fs::Mode::from_raw_mode(mode & 0o7777),
                    device,
                )
                .map_err(|e| e.to_string())?;
                // mknod applied the umask.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(|e| e.to_string())?;
                meta.apply_link(path)?;
            }
        }
        Ok(())
    }
}

/// The trees of a snapshot, read from the tree parts of their packs: each part is read once
/// (up to [`TREE_CACHE`] bytes in all, one tree at a time beyond that).
pub(super) struct Trees<'a> {
    be: &'a dyn WriteBackend,
    seal: &'a Seal,
    /// Where each tree is, and the packs those places name.
    trees: &'a IdMap<Loc>,
    packs: &'a [Hash],
    /// Where the trees are in each pack (by position in `packs`): first offset and end.
    extent: HashMap<u32, (u64, u64)>,
    parts: HashMap<u32, bytes::Bytes>,
    held: u64,
    unzip: Option<zstd::bulk::Decompressor<'static>>,
}

impl<'a> Trees<'a> {
    pub(super) fn new<D>(be: &'a dyn WriteBackend, seal: &'a Seal, index: &'a Index<D>) -> Self {
        let mut extent: HashMap<u32, (u64, u64)> = HashMap::new();
        for loc in index.trees.values() {
            let (start, end) = (
                u64::from(loc.offset),
                u64::from(loc.offset) + u64::from(loc.length),
            );
            let e = extent.entry(loc.pack).or_insert((start, end));
            *e = (e.0.min(start), e.1.max(end));
        }
        Self {
            be,
            seal,
            trees: &index.trees,
            packs: index.packs(),
            extent,
            parts: HashMap::new(),
            held: 0,
            unzip: zstd::bulk::Decompressor::new().ok(),
        }
    }

    pub(super) fn get(&mut self, id: Hash) -> std::result::Result<Tree, String> {
        let loc: Loc = *self
            .trees
            .get(&id)
            .ok_or_else(|| format!("{}: a tree of the snapshot is missing", super::DAMAGED))?;
        let (start, end) = self.extent.get(&loc.pack).copied().unwrap_or_default();
        let json = if self.parts.contains_key(&loc.pack) || self.held + (end - start) <= TREE_CACHE
        {
            if !self.parts.contains_key(&loc.pack) {
                let part = self
                    .be
                    .read_partial(
                        FileType::Pack,
                        &Id::new(self.packs[loc.pack as usize]),
                        false,
                        u32::try_from(start).unwrap_or(u32::MAX),
                        u32::try_from(end - start).unwrap_or(u32::MAX),
                    )
                    .map_err(|e| super::errors::one_line(&e))?;
                self.held += end - start;
                self.parts.insert(loc.pack, part);
            }
            let part = &self.parts[&loc.pack];
            let from = usize::try_from(u64::from(loc.offset) - start).unwrap_or(usize::MAX);
            let sealed = part
                .get(from..from.saturating_add(loc.length as usize))
                .ok_or_else(|| {
                    format!("{}: a pack is shorter than its index says", super::DAMAGED)
                })?;
            loc.decode(sealed, self.seal, self.unzip.as_mut())?
        } else {
            loc.read(self.packs[loc.pack as usize], self.be, self.seal)?
        };
        serde_json::from_slice(&json).map_err(|e| format!("cannot read a tree: {e}"))
    }
}

/// A regular file being restored: the bytes still to write, and its metadata for the end.
struct Out {
    path: PathBuf,
    left: AtomicU64,
    meta: Meta,
}

/// The files of a tree restore, opened for each stretch that writes into them.
struct Files(Vec<Out>);

impl Sink for Files {
    fn write(&self, file: u32, runs: &[(u64, &[u8])]) -> std::result::Result<(), String> {
        use std::os::unix::fs::FileExt;
        let out = self
            .0
            .get(file as usize)
            .ok_or_else(|| "a blob goes to no file".to_string())?;
        let shown = |e: &dyn std::fmt::Display| format!("{}: {e}", out.path.display());
        let f = OpenOptions::new()
            .write(true)
            .open(&out.path)
            .map_err(|e| shown(&e))?;
        let mut written = 0_u64;
        for (at, data) in runs {
            f.write_all_at(data, *at).map_err(|e| shown(&e))?;
            written += data.len() as u64;
        }
        // The write that ends the file gives it its metadata.
        if out.left.fetch_sub(written, Ordering::AcqRel) == written {
            out.meta.apply(&f).map_err(|e| shown(&e))?;
        }
        Ok(())
    }
}

/// What a restored entry gets besides its content.
struct Meta {
    /// Permission bits (with setuid, setgid and sticky).
    mode: Option<u32>,
    atime: Option<SystemTime>,
    mtime: Option<SystemTime>,
    /// Restored when running as root, as restic does.
    owner: Option<(u32, u32)>,
}

impl Meta {
    fn of(node: &Node, root: bool) -> Self {
        let m = &node.meta;
        Self {
            mode: m.mode.map(mode_from_go),
            atime: m.atime.map(SystemTime::from),
            mtime: m.mtime.map(SystemTime::from),
            owner: m.uid.zip(m.gid).filter(|_| root),
        }
    }

    /// Owner, then mode (a change of owner clears setuid), then times, on an open file or
    /// directory.
    fn apply(&self, f: &File) -> std::result::Result<(), String> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(f, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        if let Some(mode) = self.mode {
            f.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())?;
        }
        let mut times = FileTimes::new();
        if let Some(t) = self.atime {
            times = times.set_accessed(t);
        }
        if let Some(t) = self.mtime {
            times = times.set_modified(t);
        }
        f.set_times(times).map_err(|e| e.to_string())
    }

    /// Owner and times of a symlink or special file, not of what it points to.
    fn apply_link(&self, path: &Path) -> std::result::Result<(), String> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let stamp = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(
                    rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_OMIT,
                    },
                    |d| rustix::fs::Timespec {
                        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        tv_nsec: i64::from(d.subsec_nanos()),
                    },
                )
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &rustix::fs::Timestamps {
                last_access: stamp(self.atime),
                last_modification: stamp(self.mtime),
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| e.to_string())
    }
}

/// Unix permission bits from the mode restic records (Go's `os.FileMode`: the permission bits,
/// with setuid, setgid and sticky as bits 23, 22 and 20).
fn mode_from_go(go: u32) -> u32 {
    let mut mode = go & 0o777;
    for (bit, unix) in [(1 << 23, 0o4000), (1 << 22, 0o2000), (1 << 20, 0o1000)] {
        if go & bit != 0 {
            mode |= unix;
        }
    }
    mode
}
