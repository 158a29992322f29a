//! Target kinds behind one trait: how each kind is backed up, restored to a path and, for
//! database kinds, restored into a database.
//!
//! Adding a kind: a file in `kinds/` implementing [`Kind`] (and [`DbKind`] for a database
//! server), and one line in [`of`]. The engine dispatches only here.

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use jiff::Timestamp;
use runbook_config::{DbUrl, Target, TargetKind};
use secrecy::SecretString;

use crate::{
    DbRestore, Engine, Error, Result, Snapshot, TargetLock,
    repository::{Chunking, Found, Repo},
    snapshot::Meta,
};

mod bucket;
mod files;
mod mariadb;
mod postgres;
mod sqlite;

/// The implementation of `kind`: the registration table, one line per kind.
pub(crate) fn of(kind: &TargetKind) -> Box<dyn Kind + '_> {
    match kind {
        TargetKind::Sqlite { path } => Box::new(sqlite::Sqlite { path }),
        TargetKind::Postgres(pg) => Box::new(postgres::Pg(pg.clone())),
        TargetKind::Mariadb(db) => Box::new(mariadb::Maria(db.clone())),
        TargetKind::Files { paths, exclude } => Box::new(files::Files { paths, exclude }),
        TargetKind::Bucket(source) => Box::new(bucket::BucketKind { source }),
    }
}

/// One kind of target.
pub(crate) trait Kind {
    /// Reads the source and writes one snapshot; calls [`BackupCx::begin_write`] right before
    /// the repository is first written.
    fn backup(&self, cx: BackupCx<'_>) -> Result<Snapshot>;

    /// Restores `cx.snapshot` into the staging directory `cx.staged` is about to commit.
    fn restore_to(&self, cx: RestoreCx<'_>) -> Result<()> {
        Err(Error::Usage {
            target: cx.target.to_string(),
            message: "a database target restores into a database: use --into DBNAME".into(),
        })
    }

    /// Restores the snapshot into the bucket `into` (`s3:...`), using `scratch` for the tree;
    /// returns whether `into` held objects before.
    fn restore_into_bucket(
        &self,
        target: &str,
        _repo: Repo,
        _snapshot: &Snapshot,
        into: &str,
        _force: bool,
        _scratch: &Path,
    ) -> Result<bool> {
        Err(Error::Usage {
            target: target.to_string(),
            message: format!("--into {into}: only bucket targets restore into a bucket"),
        })
    }

    /// The database server of a database kind, on `server` instead of its own when given.
    fn database(&self, _server: Option<&DbUrl>) -> Option<Arc<dyn DbKind>> {
        None
    }
}

/// A database server kind (PostgreSQL, MariaDB): what drills and restores ask of it.
pub(crate) trait DbKind: std::fmt::Debug + Send + Sync {
    /// `postgres` or `mariadb`.
    fn engine(&self) -> &'static str;
    /// The connection (the password held apart).
    fn url(&self) -> &DbUrl;
    /// The password file, if the target names one.
    fn password_file(&self) -> Option<&Path>;
    /// Runs `sql` in `database`; the rows, columns split.
    fn rows(&self, cx: &DbCx<'_>, database: &str, sql: &str) -> Result<Vec<Vec<String>>>;
    /// Databases whose name starts with `prefix`.
    fn databases(&self, cx: &DbCx<'_>, prefix: &str) -> Result<Vec<String>>;
    /// Drops `database` if it exists.
    fn drop_database(&self, cx: &DbCx<'_>, database: &str) -> Result<()>;
    /// Restores the dump at `inner` of snapshot `id` into `into`; returns whether `into`
    /// existed before.
    fn restore_into(&self, cx: &DbCx<'_>, restore: DbRestoreCx<'_>) -> Result<bool>;
}

/// `url` with its connection replaced by `server` (keeping the source database name); a
/// password in `server` replaces the target's password file.
pub(crate) fn on_server(url: &DbUrl, password_file: &mut Option<PathBuf>, server: &DbUrl) -> DbUrl {
    if server.password().is_some() {
        *password_file = None;
    }
    let mut u = server.clone();
    u.database.clone_from(&url.database);
    u
}

/// What every database call needs besides the server.
pub(crate) struct DbCx<'a> {
    pub target: &'a str,
    pub scratch_root: &'a Path,
}

/// A database restore in progress.
pub(crate) struct DbRestoreCx<'a> {
    pub repo: Repo,
    pub id: &'a str,
    pub inner: &'a str,
    pub into: &'a str,
    pub opts: &'a DbRestore,
    /// Seconds per phase, for the report: the kind records its own (none: one `restore`).
    pub phases: &'a mut std::collections::BTreeMap<String, f64>,
}

/// Runs `step`, recording the seconds it took as the phase `name` in `phases`.
pub(crate) fn timed<T>(
    phases: &mut std::collections::BTreeMap<String, f64>,
    name: &str,
    step: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let started = Instant::now();
    let done = step();
    phases.insert(name.to_string(), started.elapsed().as_secs_f64());
    done
}

/// A restore to a path in progress.
pub(crate) struct RestoreCx<'a> {
    pub target: &'a str,
    pub repo: Repo,
    pub snapshot: &'a Snapshot,
    /// The destination.
    pub to: &'a Path,
    pub force: bool,
    /// Seconds per phase, for the report: the kind records its own (none: one `restore`).
    pub phases: &'a mut std::collections::BTreeMap<String, f64>,
}

/// A backup in progress.
pub(crate) struct BackupCx<'a> {
    pub engine: &'a Engine,
    pub target: &'a Target,
    pub password: SecretString,
    pub lock: &'a mut TargetLock,
    pub meta: Meta,
    pub started: Instant,
    pub time: Option<Timestamp>,
}

impl BackupCx<'_> {
    /// The target's repository, written with `chunking`.
    pub(crate) fn repo(&self, chunking: Chunking) -> Result<Repo> {
        Repo::open(
            &self.engine.config.repository,
            &self.target.name,
            &self.password,
            Some(chunking),
        )
    }

    /// The target's repository, opened on a second thread while `start` runs on this one:
    /// opening derives the repository's key with scrypt, a quarter of a second of one core,
    /// which a dump tool spends starting, connecting and reading its catalog instead of
    /// waiting for it (`start` returns once the tool has written its first bytes, which wait
    /// in the pipe). A repository that does not exist yet has its key derived there too, but
    /// is written (created with `chunking`) only once `start` has succeeded, so a backup that
    /// cannot start leaves none behind. `start`'s
    /// failure is returned first; when the repository does not open, what `start` returned is
    /// dropped (a dump's tool is killed).
    pub(crate) fn repo_beside<T>(
        &self,
        chunking: Chunking,
        start: impl FnOnce() -> Result<T>,
    ) -> Result<(Repo, T)> {
        let (location, name, password) = (
            &self.engine.config.repository,
            &self.target.name,
            &self.password,
        );
        std::thread::scope(|s| {
            let finding = s.spawn(move || Repo::locate(location, name, password, Some(chunking)));
            let started = start();
            let found = finding
                .join()
                .unwrap_or_else(|payload| std::panic::resume_unwind(payload));
            let started = started?;
            let repo = match found? {
                Found::Open(repo) => repo,
                Found::New(creation) => creation.create()?,
            };
            Ok((repo, started))
        })
    }

    /// Where scratch copies go.
    pub(crate) fn scratch_root(&self) -> PathBuf {
        self.engine.config.scratch_dir()
    }

    /// Marks the repository as being written (a run killed from here on is cleaned up by the
    /// next) and heals damage recorded earlier.
    pub(crate) fn begin_write(&mut self, repo: &Repo) -> Result<()> {
        self.lock.begin_write()?;
        self.engine.heal(self.target, repo)
    }

    /// Streams a dump from `reader` into the repository as the file `path`; a dump tool's
    /// failure (in `failure`) is the error reported.
    pub(crate) fn stream(
        mut self,
        repo: Repo,
        reader: impl Read + Send + 'static,
        path: &Path,
        failure: &crate::dump::FailureSlot,
    ) -> Result<Snapshot> {
        self.begin_write(&repo)?;
        let target = self.target.name.clone();
        repo.backup_stream(
            reader,
            crate::repository::StreamFile::dump(path),
            self.meta,
            self.time,
        )
        .map_err(|e| match failure.lock().ok().and_then(|f| f.clone()) {
            Some(why) => Error::Repository {
                target,
                action: "backup",
                message: format!("{why} (no snapshot was written)"),
            },
            None => e,
        })
    }
}
