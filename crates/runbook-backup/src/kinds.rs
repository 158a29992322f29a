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
    /// Opens the repository again, for a kind that must read the dump twice.
    pub reopen: &'a dyn Fn() -> Result<Repo>,
    /// Where a kind that must empty the database first keeps a dump of it until the restore
    /// is done (`data_dir/saved/<target>`).
    pub saved_dir: &'a Path,
}

/// The two databases a forced restore into a database with content uses beside it: the
/// restore goes into `new`; once it is complete, `new` takes the database's place (its name
/// in PostgreSQL, its tables in MariaDB), the old content moves to `old`, and `old` is
/// dropped. A forced restore drops what a killed one left under these names.
pub(crate) struct Beside {
    pub(crate) new: String,
    pub(crate) old: String,
}

impl Beside {
    const NEW: &str = "__runbook_new";
    const OLD: &str = "__runbook_old";

    /// The names beside `into`, at most 63 bytes as PostgreSQL allows (MariaDB 64): a longer
    /// name is cut and a hash of all of it added, so two long names do not share them.
    pub(crate) fn of(into: &str) -> Self {
        let base = if into.len() + Self::NEW.len() <= 63 {
            into.to_string()
        } else {
            // FNV-1a: stable across runs and versions, unlike std's hasher.
            let hash = into.bytes().fold(0x811c_9dc5_u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            // `into` passed `check_db_name`: ASCII, so any byte index is a char boundary.
            format!("{}_{hash:08x}", &into[..63 - Self::NEW.len() - 9])
        };
        Self {
            new: format!("{base}{}", Self::NEW),
            old: format!("{base}{}", Self::OLD),
        }
    }
}

/// `e`, with `note` added to what it says.
pub(crate) fn with_note(e: Error, note: &str) -> Error {
    match e {
        Error::Database {
            target,
            server,
            reason,
        } => Error::Database {
            target,
            server,
            reason: format!("{reason} ({note})"),
        },
        other => other,
    }
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

#[cfg(test)]
mod tests {
    use super::Beside;

    #[test]
    fn the_names_beside_a_database_fit_the_servers_and_stay_apart() {
        let short = Beside::of("shop");
        assert_eq!(
            (short.new.as_str(), short.old.as_str()),
            ("shop__runbook_new", "shop__runbook_old")
        );
        let a = Beside::of(&"a".repeat(63));
        let b = Beside::of(&format!("{}b", "a".repeat(62)));
        for name in [&a.new, &a.old, &b.new, &b.old] {
            assert!(name.len() <= 63, "{name}");
        }
        assert_ne!(a.new, b.new);
    }
}
