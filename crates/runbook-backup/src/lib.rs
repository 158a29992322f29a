//! Backups that restore: the repository (restic format) and the targets that feed it.
//!
//! [`Engine`] is the whole public surface: back up, list, restore, forget and check the
//! targets of a [`runbook_config::Config`]. Each target has its own repository at
//! `<repository.path>/<target>`, its own lock, and the chunker its data wants.

mod database;
mod destination;
mod dump;
mod error;
mod heal;
mod lock;
mod mariadb;
mod postgres;
mod repository;
mod restore;
mod scratch;
mod snapshot;
mod sqlite;

use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use jiff::Timestamp;
use runbook_config::{Config, Target, TargetKind};
use secrecy::SecretString;

pub use database::Database;
pub use error::{Error, Result};
pub use lock::TargetLock;
pub use repository::{CheckReport, ForgetPlan, panics_are_reported};
pub use scratch::{ScratchDir, remove_leftovers};
pub use snapshot::Snapshot;

use crate::{
    repository::{BackupSpec, Chunking, Repo},
    restore::Staged,
    snapshot::Meta,
};

/// The runbook version recorded in every snapshot.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A backup request.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Why the backup is taken (`manual`, `schedule`, `restore-drill`, ...).
    pub reason: String,
    /// Snapshot time; `None` is now. Lets tests fabricate history.
    pub time: Option<Timestamp>,
}

impl Default for BackupRequest {
    fn default() -> Self {
        Self {
            reason: "manual".into(),
            time: None,
        }
    }
}

/// How to restore a database target.
#[derive(Debug, Clone)]
pub struct DbRestore {
    /// Replace a non-empty database (dropped and recreated first).
    pub force: bool,
    /// Keep the dump's object owners (PostgreSQL).
    pub keep_owners: bool,
    /// Parallel restore jobs (PostgreSQL); above 1 the dump is staged in `data_dir` first.
    pub jobs: u32,
    /// Restore onto this server instead of the target's own (a drill server).
    pub server: Option<runbook_config::DbUrl>,
    /// Run `ANALYZE` afterwards (PostgreSQL), so the restored database plans queries well.
    /// Drills, which drop the database minutes later, skip it.
    pub analyze: bool,
}

impl Default for DbRestore {
    fn default() -> Self {
        Self {
            force: false,
            keep_owners: false,
            jobs: 1,
            server: None,
            analyze: true,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: Snapshot,
    /// Where it was written.
    pub to: PathBuf,
    /// Whether an existing destination was replaced.
    pub replaced: bool,
    /// Seconds the restore took.
    pub seconds: f64,
}

/// Runs backups, restores, retention and checks for the targets of one configuration.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
}

impl Engine {
    /// An engine for `config`.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn password(&self) -> Result<SecretString> {
        Ok(self.config.password()?)
    }

    /// Opens the existing repository of `target`.
    fn open_repo(&self, target: &str) -> Result<Repo> {
        Repo::open(
            &self.config.repository.path,
            target,
            &self.password()?,
            None,
        )
    }

    fn lock(&self, target: &Target) -> Result<TargetLock> {
        let mut lock = TargetLock::acquire(&self.config.data_dir, &target.name)?;
        if lock.interrupted {
            self.recover(target)?;
            lock.end_write();
        }
        Ok(lock)
    }

    /// A run on this target died while writing (e.g. `kill -9`): remove its half-written
    /// files and the packs no index references. Earlier snapshots were never touched.
    fn recover(&self, target: &Target) -> Result<()> {
        let dir = self.config.repository.path.join(&target.name);
        if !dir.join("config").exists() {
            let _ = fs::remove_dir_all(&dir);
            return Ok(());
        }
        remove_tmp_files(&dir);
        let repo = self.open_repo(&target.name)?;
        repo.prune()
    }

    /// Before a backup writes: damaged packs recorded by earlier reads go to quarantine, and
    /// packs that are gone leave the index, so the new snapshot never reuses data that cannot
    /// be read back (see `heal.rs`).
    fn heal(&self, target: &Target, repo: &Repo) -> Result<()> {
        let data_dir = &self.config.data_dir;
        let damaged = heal::recorded(data_dir, &target.name);
        if damaged.is_some() {
            // Which pack is damaged is not always in the message that found it: every pack
            // whose content no longer hashes to its name goes (a healthy one never does).
            let quarantine = data_dir.join("quarantine").join(&target.name);
            let moved =
                heal::quarantine(&self.config.repository.path.join(&target.name), &quarantine)?;
            for pack in moved {
                log::warn!(
                    "target `{}`: damaged pack {pack} moved to {}; its data is stored again by this backup",
                    target.name,
                    quarantine.display()
                );
            }
        }
        repo.heal_index()?;
        if damaged.is_some() {
            // Snapshots that referred to the lost data are rewritten without it.
            self.open_repo(&target.name)?.repair_snapshots()?;
        }
        heal::clear(data_dir, &target.name);
        Ok(())
    }

    /// Records damage a read ran into, for the next backup to heal.
    fn noting_damage<T>(&self, target: &str, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.to_string().contains(repository::DAMAGED)
        {
            heal::record(&self.config.data_dir, target, &[e.to_string()]);
        }
        result
    }

    /// Backs up `target` and returns the new snapshot.
    ///
    /// # Errors
    /// Unknown target, unreadable source, a file that is not a SQLite database, a copy that
    /// fails its integrity check, a wrong password or a repository write failure. No snapshot
    /// is recorded unless everything succeeded.
    pub fn backup(&self, target: &str, req: &BackupRequest) -> Result<Snapshot> {
        let started = Instant::now();
        let target = self.config.target(target)?;
        let password = self.password()?;
        let mut lock = self.lock(target)?;
        let root = &self.config.repository.path;
        let mut meta = Meta {
            kind: target.kind.name().to_string(),
            reason: req.reason.clone(),
            prepare_seconds: 0.0,
            runbook_version: VERSION.to_string(),
        };
        let snapshot = match &target.kind {
            TargetKind::Sqlite { path } => {
                let source = sqlite::Source::open(&target.name, path)?;
                let chunking = Chunking::Fixed(source.page_size);
                let repo = Repo::open(root, &target.name, &password, Some(chunking))?;
                // The copy keeps the source's file name: the snapshot records it under the
                // source's path (`as_path` replaces only the directory).
                let scratch = ScratchDir::new(&self.config.scratch_dir(), &target.name)?;
                let copy = scratch.join(path.file_name().unwrap_or(path.as_os_str()));
                sqlite::consistent_copy(&target.name, source, path, &copy)?;
                meta.prepare_seconds = started.elapsed().as_secs_f64();
                lock.begin_write()?;
                self.heal(target, &repo)?;
                repo.backup(&BackupSpec {
                    paths: std::slice::from_ref(&copy),
                    as_path: Some(path),
                    excludes: &[],
                    use_parent: false,
                    meta,
                    time: req.time,
                })?
            }
            TargetKind::Postgres(pg) => {
                let conn = postgres::Conn::new(&target.name, pg)?;
                conn.check_versions()?;
                let repo = Repo::open(root, &target.name, &password, Some(Chunking::Content))?;
                let (reader, failure) = conn.start_dump()?;
                lock.begin_write()?;
                self.heal(target, &repo)?;
                let path = PathBuf::from(format!("/postgres/{}.dump", pg.url.database));
                repo.backup_stream(reader, &path, meta, req.time)
                    .map_err(|e| match failure.lock().ok().and_then(|f| f.clone()) {
                        Some(why) => Error::Repository {
                            target: target.name.clone(),
                            action: "backup",
                            message: format!("{why} (no snapshot was written)"),
                        },
                        None => e,
                    })?
            }
            TargetKind::Mariadb(db) => {
                let conn = mariadb::Conn::new(&target.name, db, &self.config.scratch_dir())?;
                let repo = Repo::open(root, &target.name, &password, Some(Chunking::Content))?;
                let (reader, failure) = conn.start_dump()?;
                lock.begin_write()?;
                self.heal(target, &repo)?;
                let path = PathBuf::from(format!("/mariadb/{}.sql", db.url.database));
                repo.backup_stream(reader, &path, meta, req.time)
                    .map_err(|e| stream_error(&target.name, &failure, e))?
            }
            TargetKind::Files { paths, exclude } => {
                for p in paths {
                    fs::metadata(p).map_err(|e| Error::Source {
                        target: target.name.clone(),
                        path: p.clone(),
                        reason: e.to_string(),
                    })?;
                }
                let repo = Repo::open(root, &target.name, &password, Some(Chunking::Content))?;
                lock.begin_write()?;
                self.heal(target, &repo)?;
                repo.backup(&BackupSpec {
                    paths,
                    as_path: None,
                    excludes: exclude,
                    use_parent: true,
                    meta,
                    time: req.time,
                })?
            }
        };
        lock.end_write();
        Ok(snapshot)
    }

    /// Backs up `target`, then applies its `keep` rule as of `now`: what every backup does,
    /// from the CLI, the API or a schedule. Returns the snapshot and what retention removed.
    ///
    /// # Errors
    /// As [`Engine::backup`]; [`Error::Retention`] when the snapshot was saved but retention
    /// failed (the snapshot stays).
    pub fn backup_and_retain(
        &self,
        target: &str,
        req: &BackupRequest,
        now: Timestamp,
    ) -> Result<(Snapshot, ForgetPlan)> {
        let snapshot = self.backup(target, req)?;
        match self.forget(target, now, false) {
            Ok(plan) => Ok((snapshot, plan)),
            Err(e) => Err(Error::Retention {
                target: target.to_string(),
                snapshot: snapshot.short_id().to_string(),
                source: Box::new(e),
            }),
        }
    }

    /// All snapshots of `target`, oldest first; empty when it has never been backed up.
    ///
    /// # Errors
    /// Unknown target, wrong password, unreadable repository.
    pub fn snapshots(&self, target: &str) -> Result<Vec<Snapshot>> {
        let target = self.config.target(target)?;
        match self.open_repo(&target.name) {
            Ok(repo) => repo.snapshots(),
            Err(Error::NoRepository { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Restores snapshot `wanted` (`latest` or an id prefix) of `target` to `to`.
    ///
    /// The data is written beside `to` and renamed into place only when complete (and, for
    /// SQLite, when it passes `integrity_check`), so a failed restore leaves `to` as it was.
    ///
    /// # Errors
    /// `to` exists and `force` is false; no such snapshot; damaged repository data.
    pub fn restore(
        &self,
        target: &str,
        wanted: &str,
        to: &Path,
        force: bool,
    ) -> Result<RestoreReport> {
        self.noting_damage(target, self.restore_file(target, wanted, to, force))
    }

    fn restore_file(
        &self,
        target: &str,
        wanted: &str,
        to: &Path,
        force: bool,
    ) -> Result<RestoreReport> {
        let started = Instant::now();
        let target = self.config.target(target)?;
        destination::check_not_protected(&self.config, to)?;
        let repo = self.open_repo(&target.name)?;
        let snapshot = repo.find(wanted)?;
        let replaced = fs::symlink_metadata(to).is_ok();
        match &target.kind {
            TargetKind::Sqlite { .. } => {
                // rustic's parallel restore into a staging directory beside `to`, then the
                // one file is checked and renamed into place.
                let sidecars = sqlite::sidecars(to);
                let staged = Staged::new(to, force, &sidecars)?;
                fs::create_dir_all(&staged.path).map_err(Error::io(format!(
                    "cannot create {}",
                    staged.path.display()
                )))?;
                let inner = snapshot.paths.first().cloned().unwrap_or_default();
                let file = staged.path.join(inner.trim_start_matches('/'));
                repo.restore_tree(&snapshot.id, &staged.path)?;
                sqlite::check_file(
                    &target.name,
                    &file,
                    "the restored database",
                    sqlite::Check::Quick,
                )?;
                for side in sqlite::sidecars(&file) {
                    let _ = fs::remove_file(side);
                }
                staged.commit(Some(&file), &sidecars)?;
            }
            TargetKind::Postgres(_) | TargetKind::Mariadb(_) => {
                return Err(Error::Usage {
                    target: target.name.clone(),
                    message: "a database target restores into a database: use --into DBNAME".into(),
                });
            }
            TargetKind::Files { .. } => {
                let staged = Staged::new(to, force, &[])?;
                fs::create_dir_all(&staged.path).map_err(Error::io(format!(
                    "cannot create {}",
                    staged.path.display()
                )))?;
                repo.restore_tree(&snapshot.id, &staged.path)?;
                staged.commit(None, &[])?;
            }
        }
        Ok(RestoreReport {
            snapshot,
            to: to.to_path_buf(),
            replaced,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Resolves a restore destination requested through the API: a relative path lands in the
    /// first `restore_roots` directory, an absolute one must lie inside a root; `..`, symlinks
    /// and runbook's own files are refused.
    ///
    /// # Errors
    /// [`Error::Destination`] naming the rule broken.
    pub fn api_restore_path(&self, requested: &str) -> Result<PathBuf> {
        destination::resolve_api(&self.config, requested)
    }

    /// Restores snapshot `wanted` of a PostgreSQL target into database `into` on the target's
    /// server: created from `template0` when missing; an existing database that holds any
    /// relation is refused unless `force`, which drops and recreates it first. Owners are not
    /// restored unless `keep_owners`. `ANALYZE` runs afterwards.
    ///
    /// # Errors
    /// Not a postgres target, bad database name, refusal, tool failures (stderr redacted).
    pub fn restore_database(
        &self,
        target: &str,
        wanted: &str,
        into: &str,
        opts: &DbRestore,
    ) -> Result<RestoreReport> {
        self.noting_damage(target, self.restore_db(target, wanted, into, opts))
    }

    fn restore_db(
        &self,
        target: &str,
        wanted: &str,
        into: &str,
        opts: &DbRestore,
    ) -> Result<RestoreReport> {
        let DbRestore {
            force,
            keep_owners,
            jobs,
            ref server,
            analyze,
        } = *opts;
        let started = Instant::now();
        let target = self.config.target(target)?;
        postgres::check_db_name(&target.name, into)?;
        // The target's kind with its connection replaced by `server` when one is given
        // (non-database kinds are refused below).
        let kind = Database::new(
            &target.name,
            &target.kind,
            server.as_ref(),
            &self.config.scratch_dir(),
        )
        .map_or_else(|_| target.kind.clone(), |db| db.server_kind());
        let repo = self.open_repo(&target.name)?;
        let snapshot = repo.find(wanted)?;
        let inner = snapshot.paths.first().cloned().unwrap_or_default();
        let id = snapshot.id.clone();
        let replaced = match &kind {
            TargetKind::Postgres(pg) => {
                let conn = postgres::Conn::new(&target.name, pg)?;
                let exists = prepare_pg(&conn, &target.name, into, force)?;
                if jobs > 1 {
                    // pg_restore runs in parallel only from a file: stage the dump in data_dir.
                    let scratch = ScratchDir::new(
                        &self.config.scratch_dir(),
                        &format!("{}-restore", target.name),
                    )?;
                    let file = scratch.join("restore.dump");
                    let mut out = fs::File::create(&file)
                        .map_err(Error::io(format!("cannot create {}", file.display())))?;
                    repo.dump_to(&id, &inner, &mut out)?;
                    out.sync_all()
                        .map_err(Error::io(format!("cannot write {}", file.display())))?;
                    drop(out);
                    conn.restore(into, keep_owners, Some((&file, jobs)), |_| Ok(()))?;
                } else {
                    conn.restore(into, keep_owners, None, |stdin| {
                        repo.dump_to(&id, &inner, stdin)
                    })?;
                }
                if analyze {
                    conn.psql(into, "ANALYZE")?;
                }
                exists
            }
            TargetKind::Mariadb(db) => {
                let conn = mariadb::Conn::new(&target.name, db, &self.config.scratch_dir())?;
                let exists = conn.sql(&format!(
                    "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{into}'"
                ))? != "0";
                if exists {
                    let tables = conn.sql(&format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{into}'"))?;
                    if tables != "0" && !force {
                        return Err(Error::DatabaseNotEmpty {
                            target: target.name.clone(),
                            database: into.to_string(),
                        });
                    }
                    conn.sql(&format!("DROP DATABASE `{into}`"))?;
                }
                conn.sql(&format!("CREATE DATABASE `{into}` CHARACTER SET utf8mb4"))?;
                conn.restore(into, |stdin| repo.dump_to(&id, &inner, stdin))?;
                exists
            }
            _ => {
                return Err(Error::Usage {
                    target: target.name.clone(),
                    message: "--into is for database targets; use --to PATH".into(),
                });
            }
        };
        Ok(RestoreReport {
            snapshot,
            to: PathBuf::from(format!("database {into}")),
            replaced,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The database server of a PostgreSQL or MariaDB target, or `server` standing in for it.
    ///
    /// # Errors
    /// Unknown target, or a target that is not a database.
    pub fn database(
        &self,
        target: &str,
        server: Option<&runbook_config::DbUrl>,
    ) -> Result<Database> {
        let target = self.config.target(target)?;
        Database::new(
            &target.name,
            &target.kind,
            server,
            &self.config.scratch_dir(),
        )
    }

    /// Checks the files restored from snapshot `id` of `target` under `dir` against the
    /// snapshot itself: every file's chunks are re-hashed and compared with the chunk ids the
    /// snapshot records (the ids are SHA-256 of the original content). Returns the files that
    /// differ or are missing, and how many files were checked.
    ///
    /// # Errors
    /// Unknown target or snapshot, unreadable repository.
    pub fn verify_restored(
        &self,
        target: &str,
        id: &str,
        dir: &Path,
    ) -> Result<(usize, Vec<String>)> {
        let target = self.config.target(target)?;
        self.open_repo(&target.name)?.verify_tree(id, dir)
    }

    /// Applies `target`'s `keep` rule as of `now`; prunes unreferenced data unless `dry_run`.
    ///
    /// # Errors
    /// Unknown target, busy target, repository failures.
    pub fn forget(&self, target: &str, now: Timestamp, dry_run: bool) -> Result<ForgetPlan> {
        let target = self.config.target(target)?;
        let mut lock = self.lock(target)?;
        let repo = match self.open_repo(&target.name) {
            Ok(repo) => repo,
            Err(Error::NoRepository { .. }) => return Ok(ForgetPlan::default()),
            Err(e) => return Err(e),
        };
        if dry_run {
            return repo.forget(&target.keep, now, true);
        }
        // Removing snapshots and pruning their data is one write: a run killed in between
        // leaves the marker, and the next run on the target prunes what it left.
        lock.begin_write()?;
        let plan = repo.forget(&target.keep, now, false)?;
        lock.end_write();
        Ok(plan)
    }

    /// Checks `target`'s repository; `read_data_percent` also reads that share of the data.
    ///
    /// # Errors
    /// [`Error::CheckFailed`] when damage is found, and the usual open errors.
    pub fn check(&self, target: &str, read_data_percent: Option<f64>) -> Result<CheckReport> {
        let read = read_data_percent.map(|p| {
            if p >= 100.0 {
                "all".to_string()
            } else {
                format!("{p}%")
            }
        });
        self.check_reading(target, read.as_deref())
    }

    /// Checks `target`'s repository and reads back slice `n` of `of` of its packs (by pack
    /// id, so `of` runs with `n` = 1..=`of` read every pack once): the rolling verification
    /// `serve` runs daily.
    ///
    /// # Errors
    /// [`Error::CheckFailed`] when damage is found (recorded for the next backup to heal),
    /// and the usual open errors.
    pub fn verify_slice(&self, target: &str, n: u32, of: u32) -> Result<CheckReport> {
        self.check_reading(target, Some(&format!("{n}/{of}")))
    }

    fn check_reading(&self, target: &str, read: Option<&str>) -> Result<CheckReport> {
        let target = self.config.target(target)?;
        // Checking never writes: what a killed run left is cleaned up by the next write, so
        // the lock is taken without recovery (a read-only repository can be checked).
        let _lock = TargetLock::acquire(&self.config.data_dir, &target.name)?;
        let repo = self.open_repo(&target.name)?;
        let report = match repo.check(read) {
            Ok(report) => report,
            // A check that reads data and breaks down on the way (rustic panics on some
            // unreadable trees) found damage as surely as one that lists it.
            Err(e @ Error::Repository { .. }) if read.is_some() => {
                heal::record(&self.config.data_dir, &target.name, &[e.to_string()]);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(first) = report.errors.first() {
            heal::record(&self.config.data_dir, &target.name, &report.errors);
            return Err(Error::CheckFailed {
                target: target.name.clone(),
                count: report.errors.len(),
                first: first.clone(),
            });
        }
        Ok(report)
    }
}

/// Fault injection for tests: when `RUNBOOK_FAILPOINT` names this point, the process dies
/// here as abruptly as under `kill -9` (no destructors, no cleanup).
pub(crate) fn failpoint(name: &str) {
    if std::env::var("RUNBOOK_FAILPOINT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

/// What kind of file `meta` describes, in words for error lines.
pub(crate) fn file_type_name(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Removes the `*-tmp-` files a killed write leaves in a local repository.
fn remove_tmp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_tmp_files(&path);
        } else if entry.file_name().to_string_lossy().ends_with("-tmp-") {
            let _ = fs::remove_file(path);
        }
    }
}

/// Creates `into` or, if it exists with content, refuses (or with `force` drops and recreates
/// it). Returns whether it existed.
fn prepare_pg(conn: &postgres::Conn<'_>, target: &str, into: &str, force: bool) -> Result<bool> {
    let maintenance = "postgres";
    let exists = conn.psql(
        maintenance,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{into}'"),
    )? != "0";
    if exists {
        let relations = conn.psql(
            into,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
        )?;
        if relations == "0" {
            return Ok(true);
        }
        if !force {
            return Err(Error::DatabaseNotEmpty {
                target: target.to_string(),
                database: into.to_string(),
            });
        }
        conn.psql(
            maintenance,
            &format!("DROP DATABASE \"{into}\" WITH (FORCE)"),
        )?;
    }
    conn.psql(
        maintenance,
        &format!("CREATE DATABASE \"{into}\" TEMPLATE template0"),
    )?;
    Ok(exists)
}

/// A dump that failed inside the repository library: report the tool's reason.
fn stream_error(
    target: &str,
    failure: &std::sync::Arc<std::sync::Mutex<Option<String>>>,
    e: Error,
) -> Error {
    match failure.lock().ok().and_then(|f| f.clone()) {
        Some(why) => Error::Repository {
            target: target.to_string(),
            action: "backup",
            message: format!("{why} (no snapshot was written)"),
        },
        None => e,
    }
}
