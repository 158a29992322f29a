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
    /// Backs up one stream as the file `path` (a database dump). The stream may abort the
    /// backup by unwinding with `StreamFailed`; then no snapshot is written.
    pub(crate) fn backup_stream(
        self,
        reader: impl std::io::Read + Send + 'static,
        path: &Path,
        meta: Meta,
        time: Option<Timestamp>,
    ) -> Result<Snapshot> {
        let target = self.target.clone();
        let path = path.to_path_buf();
        guard(&self.target.clone(), "backup", move || {
            let mut snap_opts = SnapshotOptions::default()
                .label(self.target.clone())
                .description(serde_json::to_string(&meta).ok());
            if let Some(t) = time {
                snap_opts = snap_opts.time(Some(t.to_zoned(TimeZone::UTC)));
            }
            let snap = snap_opts
                .add_tags(&format!("runbook,kind:{}", meta.kind))
                .and_then(|o| o.to_snapshot())
                .map_err(self.err("backup"))?;
            let source = StreamSource {
                path: path.clone(),
                reader: std::sync::Mutex::new(Some(reader)),
                mtime: time.unwrap_or_else(Timestamp::now),
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

/// A single stream presented to the archiver as one file.
struct StreamSource<R> {
    path: PathBuf,
    reader: std::sync::Mutex<Option<R>>,
    /// The dump's time, recorded as the file's modification time.
    mtime: Timestamp,
}

impl<R: std::io::Read + Send + 'static> rustic_core::ReadSource for StreamSource<R> {
    type Open = R;
    type Iter = std::iter::Once<rustic_core::RusticResult<rustic_core::ReadSourceEntry<R>>>;

    fn size(&self) -> rustic_core::RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let open = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let name = self.path.file_name().unwrap_or(self.path.as_os_str());
        // Complete metadata, as for a file read from disk: stock restic restores a node with
        // no mode as mode 0000. The size is filled in by the archiver once the stream has been
        // read (see vendor/README.md).
        let meta = rustic_core::repofile::Metadata {
            mode: Some(0o600),
            mtime: Some(self.mtime),
            atime: Some(self.mtime),
            ctime: Some(self.mtime),
            uid: Some(rustix::process::getuid().as_raw()),
            gid: Some(rustix::process::getgid().as_raw()),
            links: 1,
            ..Default::default()
        };
        let node = rustic_core::repofile::Node::new_node(
            name,
            rustic_core::repofile::NodeType::File,
            meta,
        );
        std::iter::once(Ok(rustic_core::ReadSourceEntry {
            path: self.path.clone(),
            node,
            open,
        }))
    }
}
