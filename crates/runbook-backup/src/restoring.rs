//! Restores: a snapshot to a path (SQLite, files) or into a database (PostgreSQL, MariaDB),
//! never over runbook's own files, and damage met on the way recorded for the next backup.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use crate::{
    Database, Engine, Error, Result, Snapshot, TargetLock, destination,
    kinds::{self, DbRestoreCx, RestoreCx},
    lock::ReadHold,
    postgres,
};

/// How to restore a database target.
#[derive(Debug, Clone)]
pub struct DbRestore {
    /// Replace a non-empty database once the restore beside it is complete (PostgreSQL swaps
    /// the names, MariaDB the tables; a MariaDB database with views, triggers, routines or
    /// events is dumped to `data_dir/saved` first, emptied and loaded again, and put back
    /// from that dump when the load fails).
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

/// Between a database's name and the time in the name of a dump saved before a restore.
const SAVED_INFIX: &str = "-before-restore-";

/// Where a restore saves what database `into` holds before it replaces it, in `saved_dir`
/// (the target's directory there): `INTO-before-restore-TIME-PID.sql`, which
/// [`Engine::saved_dumps`] reads back.
pub(crate) fn saved_dump_path(saved_dir: &Path, into: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    saved_dir.join(format!(
        "{into}{SAVED_INFIX}{stamp}-{}.sql",
        std::process::id()
    ))
}

/// Where the dump for `saved` ([`saved_dump_path`]) is written until it is whole: a restore
/// killed while it dumps leaves only this, which [`Engine::saved_dumps`] does not list and
/// the next restore into the database removes.
pub(crate) fn partial_path(saved: &Path) -> PathBuf {
    let mut name = saved.as_os_str().to_owned();
    name.push(PARTIAL_SUFFIX);
    PathBuf::from(name)
}

/// Ends the name of a dump still being written ([`partial_path`]).
const PARTIAL_SUFFIX: &str = ".partial";

/// The name of the lock a restore into database `into` on `db`'s server holds, so that targets
/// that reach the same server share it however their URLs spell it: the port with the engine's
/// default filled in, and the host as [`server_host`] names it.
fn restore_lock(db: &Database, into: &str) -> String {
    let url = db.server.url();
    let port = url
        .port
        .unwrap_or(if url.scheme == "postgres" { 5432 } else { 3306 });
    format!(
        "restore-{}-{}-{port}-{into}",
        url.scheme,
        crate::database::encode(&server_host(&url.host, port))
    )
}

/// A database server's host as one name: `local` for this machine (`localhost`, any loopback
/// address, a socket directory, or a name that resolves to one), else the lowest address the
/// name resolves to, else the name in lower case. Two names for one server that resolve to
/// different addresses stay apart.
fn server_host(host: &str, port: u16) -> String {
    use std::net::ToSocketAddrs;
    if crate::database::is_loopback(host) {
        return "local".into();
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<std::net::IpAddr> = (bare, port)
        .to_socket_addrs()
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default();
    if addrs.iter().any(std::net::IpAddr::is_loopback) {
        return "local".into();
    }
    addrs
        .into_iter()
        .min()
        .map_or_else(|| bare.to_ascii_lowercase(), |ip| ip.to_string())
}

/// A dump a restore saved in `data_dir/saved` (see [`Engine::saved_dumps`]).
#[derive(Debug, Clone)]
pub struct SavedDump {
    /// The database it was taken from.
    pub database: String,
    /// The file; `mariadb DATABASE < FILE` loads it back.
    pub path: PathBuf,
    /// A restore running now holds it (its lock): it is removed when that restore is done.
    pub in_use: bool,
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
    /// Where the time went, in seconds: `open` (the repository, its key and the snapshot),
    /// then the kind's own — for SQLite `plan` (the index and the file's list of blobs),
    /// `write` (reading, decrypting, decompressing and writing the pages), `check`
    /// (`quick_check` of the restored file, with its sync to disk beside it) and `sync` (what
    /// the sync took beyond the check); for a database `prepare` (creating or emptying it),
    /// `restore` (the dump tool loading the dump) and, for PostgreSQL, `analyze`.
    pub phases: std::collections::BTreeMap<String, f64>,
}

impl Engine {
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
        // No prune deletes what this restore is about to read (see `ReadHold`).
        let _reading = ReadHold::acquire(&self.config.data_dir, &target.name)?;
        let repo = self.open_repo(&target.name)?;
        let snapshot = repo.find(wanted)?;
        let replaced = fs::symlink_metadata(to).is_ok();
        let opened = started.elapsed().as_secs_f64();
        let mut phases = std::collections::BTreeMap::new();
        kinds::of(&target.kind).restore_to(RestoreCx {
            target: &target.name,
            repo,
            snapshot: &snapshot,
            to,
            force,
            phases: &mut phases,
        })?;
        Ok(RestoreReport {
            snapshot,
            to: to.to_path_buf(),
            replaced,
            seconds: started.elapsed().as_secs_f64(),
            phases: with_open(phases, opened, started),
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
    /// relation is refused unless `force` (the restore then goes beside it and takes its place
    /// once complete; see [`DbRestore::force`]). Owners are not
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
        let started = Instant::now();
        let target = self.config.target(target)?;
        let _reading = ReadHold::acquire(&self.config.data_dir, &target.name)?;
        if into.starts_with("s3:") {
            let repo = self.open_repo(&target.name)?;
            let snapshot = repo.find(wanted)?;
            let opened = started.elapsed().as_secs_f64();
            let scratch = crate::ScratchDir::new(
                &self.config.scratch_dir(),
                &format!("{}-restore", target.name),
            )?;
            let replaced = kinds::of(&target.kind).restore_into_bucket(
                &target.name,
                repo,
                &snapshot,
                into,
                opts.force,
                &scratch.join(""),
            )?;
            return Ok(RestoreReport {
                snapshot,
                to: PathBuf::from(into),
                replaced,
                seconds: started.elapsed().as_secs_f64(),
                phases: open_then_restore(opened, started),
            });
        }
        postgres::check_db_name(&target.name, into)?;
        let db = Database::new(
            &target.name,
            &target.kind,
            opts.server.as_ref(),
            &self.config.scratch_dir(),
        )
        .map_err(|_| Error::Usage {
            target: target.name.clone(),
            message: "--into is for database targets; use --to PATH".into(),
        })?;
        // One restore into a database at a time, whichever target it comes through: two would
        // load into the same database beside it, and one could save, or put back, what the
        // other had half loaded.
        let _one_at_a_time = TargetLock::acquire(&self.config.data_dir, &restore_lock(&db, into))
            .map_err(|e| match e {
            Error::Busy { holder, .. } => Error::Busy {
                target: target.name.clone(),
                holder: format!("another restore into database {into} is running, {holder}"),
            },
            e => e,
        })?;
        let saved_dir = self.config.saved_dir().join(&target.name);
        remove_partial_dumps(&saved_dir, into);
        for left in self.saved_dumps(&target.name).iter().filter(|d| !d.in_use) {
            log::warn!(
                "an earlier restore into {} did not finish: what it held then is saved in {}",
                left.database,
                left.path.display()
            );
        }
        let repo = self.open_repo(&target.name)?;
        let snapshot = repo.find(wanted)?;
        let opened = started.elapsed().as_secs_f64();
        let inner = snapshot.paths.first().cloned().unwrap_or_default();
        let mut phases = std::collections::BTreeMap::new();
        let replaced = db.server.restore_into(
            &db.cx(),
            DbRestoreCx {
                repo,
                id: &snapshot.id,
                inner: &inner,
                into,
                opts,
                phases: &mut phases,
                reopen: &|| self.open_repo(&target.name),
                saved_dir: &saved_dir,
            },
        )?;
        Ok(RestoreReport {
            snapshot,
            to: PathBuf::from(format!("database {into}")),
            replaced,
            seconds: started.elapsed().as_secs_f64(),
            phases: with_open(phases, opened, started),
        })
    }

    /// The dumps that restores into `target`'s databases saved in `data_dir/saved`: each is
    /// what a database held before a restore that is running (`in_use`), or that was killed
    /// or whose put-back failed, and then may be the only copy of it. By database, then oldest
    /// first; none when the directory cannot be read.
    #[must_use]
    pub fn saved_dumps(&self, target: &str) -> Vec<SavedDump> {
        let mut dumps: Vec<SavedDump> = fs::read_dir(self.config.saved_dir().join(target))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                // A dump still being written (or left half written) holds nothing to load.
                let (database, _) = name.strip_suffix(".sql")?.rsplit_once(SAVED_INFIX)?;
                let path = entry.path();
                // The restore that saved it holds a lock on it until it is done; a lock that
                // cannot be shared is one held.
                let in_use = fs::File::open(&path).is_ok_and(|f| {
                    matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
                });
                Some(SavedDump {
                    database: database.to_string(),
                    path,
                    in_use,
                })
            })
            .collect();
        // The file names carry the time they were saved, after the database's name.
        dumps.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
        dumps
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
        let t = self.config.target(target)?;
        Database::new(&t.name, &t.kind, server, &self.config.scratch_dir())
    }

    /// The database server of `target` (or `server` standing in for it) when it is a
    /// database target; `None` for other kinds.
    ///
    /// # Errors
    /// Unknown target.
    pub fn database_of(
        &self,
        target: &str,
        server: Option<&runbook_config::DbUrl>,
    ) -> Result<Option<Database>> {
        let t = self.config.target(target)?;
        if kinds::of(&t.kind).database(None).is_none() {
            return Ok(None);
        }
        self.database(target, server).map(Some)
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
}

/// The phases of a restore: those its kind recorded, with `open` (the first `opened` seconds
/// since `started`); when the kind recorded none, `open` and `restore` for the rest.
fn with_open(
    mut phases: std::collections::BTreeMap<String, f64>,
    opened: f64,
    started: Instant,
) -> std::collections::BTreeMap<String, f64> {
    if phases.is_empty() {
        return open_then_restore(opened, started);
    }
    phases.insert("open".to_string(), opened);
    phases
}

/// The phases of a restore whose kind reports none of its own: `open` took `opened` seconds
/// of the time since `started`, `restore` the rest.
fn open_then_restore(opened: f64, started: Instant) -> std::collections::BTreeMap<String, f64> {
    let total = started.elapsed().as_secs_f64();
    [("open", opened), ("restore", (total - opened).max(0.0))]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Removes the half-written dumps of database `into` in `saved_dir` that no process holds: a
/// restore killed while it dumped `into` left them, before it touched the database. Called
/// under the restore lock of `into`, so no restore into it is writing one now.
fn remove_partial_dumps(saved_dir: &Path, into: &str) {
    let prefix = format!("{into}{SAVED_INFIX}");
    for entry in fs::read_dir(saved_dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(&prefix) && name.ends_with(PARTIAL_SUFFIX)) {
            continue;
        }
        let path = entry.path();
        // A `mariadb-dump` that outlived its restore still writes into it, and holds the lock.
        let free = fs::File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
        if free && let Err(e) = fs::remove_file(&path) {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_host;

    #[test]
    fn this_machine_has_one_name_however_a_url_spells_it() {
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.0.1.1",
            "[::1]",
            "::1",
            "/run/postgresql",
        ] {
            assert_eq!(server_host(host, 5432), "local", "{host}");
        }
        assert_eq!(server_host("192.0.2.7", 5432), "192.0.2.7");
        assert_eq!(server_host("[2001:db8::7]", 3306), "2001:db8::7");
    }
}
