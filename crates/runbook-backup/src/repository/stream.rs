//! Streams (database dumps) backed up as one file, with the metadata a file read from disk
//! would have, so stock restic restores them whole.

use std::path::{Path, PathBuf};

use jiff::{Timestamp, tz::TimeZone};
use rustic_core::{BackupOptions, ParentOptions, SnapshotOptions};

use super::{Repo, describe, guard};
use crate::{
    Result,
    snapshot::{Meta, Snapshot},
};

impl Repo {
    /// Backs up one stream as the file `file.path` (a database dump, a SQLite copy). The
    /// stream may abort the backup by unwinding with `StreamFailed`; then no snapshot is
    /// written.
    pub(crate) fn backup_stream(
        self,
        reader: impl std::io::Read + Send + 'static,
        file: StreamFile<'_>,
        meta: Meta,
        time: Option<Timestamp>,
    ) -> Result<Snapshot> {
        let target = self.target.clone();
        let path = file.path.to_path_buf();
        guard(&self.target.clone(), "backup", move || {
            let mut snap_opts = SnapshotOptions::default()
                .label(self.target.clone())
                .description(serde_json::to_string(&meta).ok());
            if let Some(t) = time {
                snap_opts = snap_opts.time(Some(t.to_zoned(TimeZone::UTC)));
            }
            let snap = snap_opts
                .add_tags(&super::snapshot_tags(&meta))
                .and_then(|o| o.to_snapshot())
                .map_err(self.err("backup"))?;
            let source = StreamSource {
                path: path.clone(),
                reader: std::sync::Mutex::new(Some(reader)),
                mtime: time.unwrap_or_else(Timestamp::now),
                mode: file.mode,
                size: file.size,
            };
            let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
            let err = self.err("backup");
            let index_err = self.err("read index");
            let indexed = self.inner.to_indexed_ids().map_err(index_err)?;
            let saved = indexed
                .archive(&opts, &source, snap, std::slice::from_ref(&path))
                .map_err(err)?;
            Ok(describe(&target, &saved))
        })
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

/// A single stream presented to the archiver as one file.
struct StreamSource<R> {
    path: PathBuf,
    reader: std::sync::Mutex<Option<R>>,
    /// The dump's time, recorded as the file's modification time.
    mtime: Timestamp,
    mode: u32,
    size: Option<u64>,
}

impl<R: std::io::Read + Send + 'static> rustic_core::ReadSource for StreamSource<R> {
    type Open = R;
    type Iter = std::iter::Once<rustic_core::RusticResult<rustic_core::ReadSourceEntry<R>>>;

    fn size(&self) -> rustic_core::RusticResult<Option<u64>> {
        Ok(self.size)
    }

    fn entries(&self) -> Self::Iter {
        let open = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let name = self.path.file_name().unwrap_or(self.path.as_os_str());
        // The size is filled in by the archiver once the stream has been read (see
        // vendor/README.md).
        let node = stream_node(name, self.mode, self.mtime);
        std::iter::once(Ok(rustic_core::ReadSourceEntry {
            path: self.path.clone(),
            node,
            open,
        }))
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
