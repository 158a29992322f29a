//! SQLite targets: one committed state of the database — its pages read in place (WAL mode) or
//! a copy through SQLite's backup API — checked while it streams into the repository in
//! fixed-size chunks of the database's page size; restored whole and checked before it
//! replaces anything.

use std::{fs, os::unix::fs::PermissionsExt, path::Path, sync::Arc};

use super::{BackupCx, Kind, RestoreCx};
use crate::{
    Error, Result, ScratchDir, Snapshot,
    repository::{Chunking, StreamFile},
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
        let page_size = source.page_size;
        // The pages are stored as the live file: under its path, with its permissions.
        let mode = fs::metadata(self.path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        // What the upload reads — the live database's pages at one commit, or a copy (kept in
        // `_scratch` until the upload has read it) — and its integrity check, started at once:
        // the check runs beside the opening of the repository and the upload (which waits for
        // its verdict at the end of the file: a failed check aborts the upload before the
        // snapshot is saved), and is interrupted if the backup fails first.
        let pinning = std::time::Instant::now();
        let mut _scratch = None;
        let (file, size, checker): (Box<dyn std::io::Read + Send>, u64, _) =
            match source.pin(name, self.path)? {
                sqlite::Reading::Pinned(pinned) => {
                    let pin = pinning.elapsed().as_secs_f64();
                    // No copy to make; one a killed run left behind still goes.
                    crate::remove_leftovers(&cx.scratch_root(), name);
                    cx.meta.phases.insert("pin".into(), pin);
                    let size = pinned.size;
                    let (pages, checker) = pinned.start(name);
                    (Box::new(pages), size, checker)
                }
                sqlite::Reading::Copy(source) => {
                    let scratch = ScratchDir::new(&cx.scratch_root(), name)?;
                    let copy = scratch.join(self.path.file_name().unwrap_or(self.path.as_os_str()));
                    let copied = sqlite::consistent_copy(name, source, self.path, &copy)?;
                    cx.meta.phases.insert("copy".into(), copied);
                    let io = |e: std::io::Error| Error::Io {
                        context: format!("cannot read the backup copy {}", copy.display()),
                        source: e,
                    };
                    let file = fs::File::open(&copy).map_err(io)?;
                    let size = file.metadata().map_err(io)?.len();
                    let checker = sqlite::Checker::spawn(name, &copy)?;
                    _scratch = Some(scratch);
                    (Box::new(file), size, checker)
                }
            };
        let repo = cx.repo(Chunking::Fixed(page_size))?;
        cx.meta.prepare_seconds = cx.started.elapsed().as_secs_f64();
        cx.begin_write(&repo)?;
        let reader = sqlite::CheckedRead {
            file,
            checker: Some(checker),
            failed: Arc::default(),
            waited: Arc::default(),
        };
        let (failed, waited) = (reader.failed.clone(), reader.waited.clone());
        let stored = repo.backup_stream(
            reader,
            StreamFile {
                path: self.path,
                mode,
                size: Some(size),
            },
            cx.meta,
            cx.time,
        );
        if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        let mut snapshot = stored?;
        // Wall time: `check` is what the check added after the upload had read the whole copy
        // (the rest of it ran beside the upload), so the phases still add up to the whole.
        let waited = *waited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        snapshot.phases.insert("check".into(), waited);
        if let Some(store) = snapshot.phases.get_mut("store") {
            *store = (*store - waited).max(0.0);
        }
        Ok(snapshot)
    }

    fn restore_to(&self, cx: RestoreCx<'_>) -> Result<()> {
        // The one file, restored in runs on every core into a staging directory beside `to`,
        // then checked and renamed into place.
        if cx.force {
            crate::restore::refuse_open(cx.to, sqlite::SIDECARS)?;
        }
        let staged = Staged::new(cx.to, cx.force, sqlite::SIDECARS)?;
        fs::create_dir_all(&staged.path).map_err(Error::io(format!(
            "cannot create {}",
            staged.path.display()
        )))?;
        let inner = cx.snapshot.paths.first().cloned().unwrap_or_default();
        let file = staged.path.join(inner.trim_start_matches('/'));
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir)
                .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        }
        cx.repo
            .restore_pages(&cx.snapshot.id, &inner, &file, cx.phases)?;
        // The check reads the file from the page cache while its pages go to disk. Its phases
        // still add up: `check` is the check's own time, `sync` what the sync took beyond it
        // (the disk's share of a restore, which a user can then see).
        let checking = std::time::Instant::now();
        let checked_in = std::thread::scope(|s| {
            let synced = s.spawn(|| fs::File::open(&file).and_then(|f| f.sync_all()));
            let checked = sqlite::check_file(
                cx.target,
                &file,
                "the restored database",
                sqlite::Check::Quick,
            );
            let checked_in = checking.elapsed().as_secs_f64();
            let synced = synced
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
            checked?;
            synced.map_err(Error::io(format!("cannot sync {}", file.display())))?;
            Ok::<_, Error>(checked_in)
        })?;
        cx.phases.insert("check".into(), checked_in);
        cx.phases.insert(
            "sync".into(),
            (checking.elapsed().as_secs_f64() - checked_in).max(0.0),
        );
        for side in sqlite::sidecars(&file) {
            let _ = fs::remove_file(side);
        }
        staged.commit(Some(&file))
    }
}
