//! SQLite targets: a consistent copy through SQLite's backup API, in fixed-size chunks of the
//! database's page size; restored whole and checked before it replaces anything.

use std::{fs, path::Path};

use super::{BackupCx, Kind, RestoreCx};
use crate::{
    Error, Result, ScratchDir, Snapshot,
    repository::{BackupSpec, Chunking},
    restore::Staged,
    sqlite,
};

pub(crate) struct Sqlite<'a> {
    pub path: &'a Path,
}

impl Kind for Sqlite<'_> {
    fn backup(&self, mut cx: BackupCx<'_>) -> Result<Snapshot> {
        let name = &cx.target.name;
        let source = sqlite::Source::open(name, self.path)?;
        let repo = cx.repo(Chunking::Fixed(source.page_size))?;
        // The copy keeps the source's file name: the snapshot records it under the source's
        // path (`as_path` replaces only the directory).
        let scratch = ScratchDir::new(&cx.scratch_root(), name)?;
        let copy = scratch.join(self.path.file_name().unwrap_or(self.path.as_os_str()));
        let (copied, checked) = sqlite::consistent_copy(name, source, self.path, &copy)?;
        cx.meta.phases.insert("copy".into(), copied);
        cx.meta.phases.insert("check".into(), checked);
        cx.meta.prepare_seconds = cx.started.elapsed().as_secs_f64();
        cx.begin_write(&repo)?;
        repo.backup(&BackupSpec {
            paths: std::slice::from_ref(&copy),
            as_path: Some(self.path),
            excludes: &[],
            use_parent: false,
            meta: cx.meta,
            time: cx.time,
        })
    }

    fn restore_to(&self, cx: RestoreCx<'_>) -> Result<()> {
        // rustic's parallel restore into a staging directory beside `to`, then the one file is
        // checked and renamed into place.
        let sidecars = sqlite::sidecars(cx.to);
        let staged = Staged::new(cx.to, cx.force, &sidecars)?;
        fs::create_dir_all(&staged.path).map_err(Error::io(format!(
            "cannot create {}",
            staged.path.display()
        )))?;
        let inner = cx.snapshot.paths.first().cloned().unwrap_or_default();
        let file = staged.path.join(inner.trim_start_matches('/'));
        cx.repo.restore_tree(&cx.snapshot.id, &staged.path)?;
        sqlite::check_file(
            cx.target,
            &file,
            "the restored database",
            sqlite::Check::Quick,
        )?;
        for side in sqlite::sidecars(&file) {
            let _ = fs::remove_file(side);
        }
        staged.commit(Some(&file), &sidecars)
    }
}
