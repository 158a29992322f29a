//! Backups that restore: the repository (restic format) and the targets that feed it.
//!
//! [`Engine`] is the whole public surface: back up, list, restore, forget and check the
//! targets of a [`runbook_config::Config`]. Each target has its own repository at
//! `<repository.path>/<target>`, its own lock, and the chunker its data wants.

mod bucket;
mod checking;
mod copying;
mod database;
mod destination;
mod dump;
mod error;
mod heal;
mod kinds;
mod lock;
mod maintenance;
mod mariadb;
mod postgres;
mod repository;
mod restore;
mod restoring;
mod rotate;
mod scratch;
mod snapshot;
mod sqlite;

use std::{fs, path::Path, time::Instant};

use jiff::Timestamp;
use runbook_config::{Config, Target};
use secrecy::SecretString;

pub use copying::CopyReport;
pub use database::Database;
pub use error::{Error, Result};
pub use lock::TargetLock;
pub use maintenance::OptimizeReport;
pub use repository::{CheckReport, ForgetPlan, Live, live, panics_are_reported};
pub use restoring::{DbRestore, RestoreReport, SavedDump};
pub use rotate::{RotateReport, new_password};
pub use scratch::{ScratchDir, remove_leftovers};
pub use snapshot::Snapshot;

use crate::{repository::Repo, snapshot::Meta};

/// The runbook version recorded in every snapshot.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A backup request.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Why the backup is taken (`manual`, `schedule`, `restore-drill`, ...).
    pub reason: String,
    /// Snapshot time; `None` is now. Lets tests fabricate history.
    pub time: Option<Timestamp>,
    /// Tag it `keep-forever`: retention never removes it (a final backup before
    /// decommissioning).
    pub keep_forever: bool,
}

impl Default for BackupRequest {
    fn default() -> Self {
        Self {
            reason: "manual".into(),
            time: None,
            keep_forever: false,
        }
    }
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
        Repo::open(&self.config.repository, target, &self.password()?, None)
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
        if self.config.repository.s3.is_none() {
            let dir = self.config.repository.path.join(&target.name);
            if !dir.join("config").exists() {
                let _ = fs::remove_dir_all(&dir);
                return Ok(());
            }
            remove_tmp_files(&dir);
        }
        // Object stores write each file whole: only the unreferenced packs are left to prune.
        match self.open_repo(&target.name) {
            Ok(repo) => self.prune_unless_read(&repo, &target.name),
            Err(Error::NoRepository { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether the repository storage answers (for readiness): the local root exists and can
    /// be read, or the S3 bucket can be listed with the credentials given.
    ///
    /// # Errors
    /// One line naming the storage and the reason.
    pub fn repository_reachable(&self) -> std::result::Result<(), String> {
        repository::probe(&self.config.repository)
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
        let mut lock = self.lock(target)?;
        self.backup_locked(target, req, &mut lock, started)
    }

    /// [`Engine::backup`] under a lock the caller holds.
    fn backup_locked(
        &self,
        target: &Target,
        req: &BackupRequest,
        lock: &mut TargetLock,
        started: Instant,
    ) -> Result<Snapshot> {
        let password = self.password()?;
        let meta = Meta {
            kind: target.kind.name().to_string(),
            reason: req.reason.clone(),
            prepare_seconds: 0.0,
            runbook_version: VERSION.to_string(),
            keep_forever: req.keep_forever,
            phases: std::collections::BTreeMap::new(),
            stages: std::collections::BTreeMap::new(),
        };
        let snapshot = kinds::of(&target.kind).backup(kinds::BackupCx {
            engine: self,
            target,
            password,
            lock,
            meta,
            started,
            time: req.time,
        })?;
        lock.end_write();
        Ok(snapshot)
    }

    /// Backs up `target`, applies its `keep` rule as of `now`, then copies the new snapshot to
    /// each `copy_to` repository: what every backup does, from the CLI, the API or a schedule.
    /// Returns the snapshot, what retention removed and what each copy did.
    ///
    /// # Errors
    /// As [`Engine::backup`]; [`Error::Retention`] or [`Error::Copy`] when the snapshot was
    /// saved but what follows failed (the snapshot stays).
    pub fn backup_and_retain(
        &self,
        target: &str,
        req: &BackupRequest,
        now: Timestamp,
    ) -> Result<(Snapshot, ForgetPlan, Vec<CopyReport>)> {
        let started = Instant::now();
        let t = self.config.target(target)?;
        // One hold for the whole operation: nothing else runs on the target between the
        // backup, its retention and its copies.
        let mut lock = self.lock(t)?;
        let snapshot = self.backup_locked(t, req, &mut lock, started)?;
        // As of the snapshot just made, at the latest: it is never "dated after now".
        let now = now.max(snapshot.time);
        // No rule, nothing to remove: skip reopening the repository (its key derivation alone
        // costs a noticeable part of a small backup).
        let plan = if t.keep.is_empty() {
            ForgetPlan::default()
        } else {
            self.forget_locked(t, &mut lock, now, false)
                .map_err(|e| Error::Retention {
                    target: target.to_string(),
                    snapshot: snapshot.short_id().to_string(),
                    source: Box::new(e),
                })?
        };
        let copies = self.copy_after_backup(t, &mut lock, snapshot.short_id(), now)?;
        Ok((snapshot, plan, copies))
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

    /// Applies `target`'s `keep` rule as of `now`; prunes unreferenced data unless `dry_run`.
    ///
    /// # Errors
    /// Unknown target, busy target, repository failures.
    pub fn forget(&self, target: &str, now: Timestamp, dry_run: bool) -> Result<ForgetPlan> {
        let target = self.config.target(target)?;
        let mut lock = self.lock(target)?;
        self.forget_locked(target, &mut lock, now, dry_run)
    }

    /// [`Engine::forget`] under a lock the caller holds.
    fn forget_locked(
        &self,
        target: &Target,
        lock: &mut TargetLock,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<ForgetPlan> {
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
        if !plan.remove.is_empty()
            || lock::prune_pending(&self.config.data_dir, &target.name).exists()
        {
            failpoint("forget-before-prune");
            self.prune_unless_read(&repo, &target.name)?;
        }
        lock.end_write();
        Ok(plan)
    }

    /// Prunes data no snapshot references, unless a restore is reading the repository (see
    /// [`lock::ReadHold`]): the prune is then put off, recorded for the next forget on the
    /// target, and the data stays until then.
    fn prune_unless_read(&self, repo: &Repo, target: &str) -> Result<()> {
        let data_dir = &self.config.data_dir;
        let pending = lock::prune_pending(data_dir, target);
        let Some(_hold) = lock::prune_hold(data_dir, target)? else {
            log::warn!(
                "target `{target}`: a restore is reading the repository, so the data of the \
                 snapshots removed stays until the next backup or forget on it"
            );
            return fs::write(&pending, b"")
                .map_err(Error::io(format!("cannot write {}", pending.display())));
        };
        repo.prune()?;
        match fs::remove_file(&pending) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                context: format!("cannot remove {}", pending.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// Refuses a restore over SQLite database `path` while another process has it, or its WAL,
/// shared memory or journal, open: what that process wrote from then on would be lost. The
/// restore checks this itself; a caller about to take a `pre-restore` snapshot checks first.
///
/// # Errors
/// [`Error::Destination`] naming the process.
pub fn refuse_open_sqlite(path: &Path) -> Result<()> {
    restore::refuse_open(path, sqlite::SIDECARS)
}

/// Fault injection for tests: when `RUNBOOK_FAILPOINT` names this point, the process dies
/// here as abruptly as under `kill -9` (no destructors, no cleanup).
///
/// `RUNBOOK_FAILPOINT=name:wait=GATE` pauses here instead: the file `GATE.reached` is created,
/// and the run goes on once the file `GATE` exists, so a test can run something else at this
/// point (at most ten minutes, then it goes on).
pub(crate) fn failpoint(name: &str) {
    let Ok(v) = std::env::var("RUNBOOK_FAILPOINT") else {
        return;
    };
    if v == name {
        std::process::abort();
    }
    if let Some(gate) = v
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(":wait="))
    {
        let gate = Path::new(gate);
        let _ = fs::write(restore::with_suffix(gate, ".reached"), b"");
        let until = Instant::now() + std::time::Duration::from_secs(600);
        while !gate.exists() && Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Fault injection for tests, as [`failpoint`]; besides, `RUNBOOK_FAILPOINT=name:error` makes
/// this return true, for the caller to fail here with an error (the way a real failure goes).
pub(crate) fn failpoint_or_error(name: &str) -> bool {
    failpoint(name);
    std::env::var("RUNBOOK_FAILPOINT").is_ok_and(|v| v.strip_suffix(":error") == Some(name))
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
