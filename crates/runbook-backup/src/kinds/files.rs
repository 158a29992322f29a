//! Files targets: directories and files, content-chunked, each backup against its parent.

use std::{fs, path::PathBuf};

use super::{BackupCx, Kind, RestoreCx};
use crate::{
    Error, Result, Snapshot,
    repository::{BackupSpec, Chunking},
    restore::Staged,
};

pub(crate) struct Files<'a> {
    pub paths: &'a [PathBuf],
    pub exclude: &'a [String],
}

impl Kind for Files<'_> {
    fn backup(&self, mut cx: BackupCx<'_>) -> Result<Snapshot> {
        for p in self.paths {
            fs::metadata(p).map_err(|e| Error::Source {
                target: cx.target.name.clone(),
                path: p.clone(),
                reason: e.to_string(),
            })?;
        }
        let repo = cx.repo(Chunking::Content)?;
        cx.begin_write(&repo)?;
        repo.backup_files(&BackupSpec {
            paths: self.paths,
            as_path: None,
            excludes: self.exclude,
            use_parent: true,
            meta: cx.meta,
            time: cx.time,
        })
    }

    fn restore_to(&self, cx: RestoreCx<'_>) -> Result<()> {
        restore_tree(cx)
    }
}

/// Restores a tree to `cx.to`, staged beside it and renamed into place when complete.
pub(super) fn restore_tree(cx: RestoreCx<'_>) -> Result<()> {
    let staged = Staged::new(cx.to, cx.force, &[])?;
    fs::create_dir_all(&staged.path).map_err(Error::io(format!(
        "cannot create {}",
        staged.path.display()
    )))?;
    cx.repo.restore_tree(&cx.snapshot.id, &staged.path)?;
    staged.commit(None)
}
