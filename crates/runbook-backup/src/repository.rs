//! The repository: restic's format through `rustic_core`. This is the only module that names a
//! rustic type; everything else sees [`Repo`] and our own [`Snapshot`].
//!
//! Error rule: every rustic error is flattened here to one line (`one_line`) with the target
//! named, and an incorrect password becomes [`Error::WrongPassword`].

mod archive;
mod copy;
mod errors;
mod keys;
mod location;
mod pages;
mod progress;
pub use progress::{Live, live};
mod quarantine;
mod read;
mod retention;
mod rolling;
mod seal;
mod spill;
mod stages;
mod stream;
mod unpack;
mod untree;

use std::{
    path::{Path, PathBuf},
    str::FromStr,
};

use jiff::{Timestamp, tz::TimeZone};
use runbook_config::RepositoryConfig;
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, KeyOptions, OpenStatus, ParentOptions,
    PathList, ReadSubsetOption, Repository, RepositoryOptions, RusticError, SnapshotOptions,
    repofile::SnapshotFile,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    Error, Result,
    snapshot::{Meta, Snapshot},
};

pub(crate) use errors::DAMAGED;
pub use errors::panics_are_reported;
use errors::{guard, rerr, unreachable_none, without_backtrace};
use location::backends;
pub(crate) use location::{opendal_options, probe};
pub(crate) use stream::StreamFile;

/// How a repository cuts data into chunks (fixed when the repository is created).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunking {
    /// Content-defined (restic's default): for dumps and plain files.
    Content,
    /// Fixed-size chunks of this many bytes: for page-structured files such as SQLite.
    Fixed(u32),
}

/// What a backup writes into the snapshot besides the data.
pub(crate) struct BackupSpec<'a> {
    pub paths: &'a [PathBuf],
    /// Record the data under this path instead (used for a scratch copy of a database).
    pub as_path: Option<&'a Path>,
    pub excludes: &'a [String],
    /// Compare with the previous snapshot and skip unchanged files.
    pub use_parent: bool,
    pub meta: Meta,
    /// Snapshot time; `None` is now. Tests set it to fabricate history.
    pub time: Option<Timestamp>,
}

/// Result of a `check`.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// Problems that make data unreadable.
    pub errors: Vec<String>,
    /// Oddities that do not affect restorability.
    pub warnings: Vec<String>,
}

/// Which snapshots a retention rule keeps and removes.
#[derive(Debug, Default, serde::Serialize)]
pub struct ForgetPlan {
    /// Snapshots kept, with the rule that keeps each.
    pub keep: Vec<(Snapshot, Vec<String>)>,
    /// Snapshots removed.
    pub remove: Vec<Snapshot>,
}

/// The tag of snapshots retention never removes (`restic forget --keep-tag keep-forever` keeps
/// them too).
pub(crate) const KEEP_FOREVER: &str = "keep-forever";

/// An open repository of one target.
pub(crate) struct Repo {
    inner: Repository<OpenStatus>,
    /// The storage itself, for what rustic's API does not offer (quarantine).
    backend: std::sync::Arc<dyn rustic_core::WriteBackend>,
    /// On storage other hosts may write too (S3): prune deletes in two phases.
    shared: bool,
    /// The repository's directory, when it is local: backups fill their packs in files there
    /// and restores read the pack files directly.
    local: Option<std::path::PathBuf>,
    target: String,
}

/// A repository as a backup finds it before anything is written: open, or still to be created.
pub(crate) enum Found {
    Open(Repo),
    /// Not there yet: its key already derived (the slow part of creating a repository), nothing
    /// written until [`Creation::create`].
    New(Creation),
}

/// A repository ready to be created.
pub(crate) struct Creation {
    base: Repository<()>,
    backend: std::sync::Arc<dyn rustic_core::WriteBackend>,
    key: keys::NewKey,
    config: ConfigOptions,
    shared: bool,
    local: Option<PathBuf>,
    target: String,
}

impl Creation {
    /// Creates the repository: its directories, the key file, then the config (a creation
    /// stopped before the config finds its key file again, [`keys::new_master`]).
    pub(crate) fn create(self) -> Result<Repo> {
        let target = self.target;
        let failed = |message| Error::Repository {
            target: target.clone(),
            action: "create repository",
            message,
        };
        if let Some(dir) = &self.local {
            std::fs::create_dir_all(dir)
                .map_err(Error::io(format!("cannot create {}", dir.display())))?;
        }
        self.backend
            .create()
            .map_err(|e| failed(errors::one_line(&e)))?;
        self.key.write(&*self.backend).map_err(failed)?;
        let inner = self
            .base
            .init(
                &Credentials::Masterkey(self.key.master),
                &KeyOptions::default(),
                &self.config,
            )
            .map_err(rerr(&target, "create repository"))?;
        Ok(Repo {
            inner,
            backend: self.backend,
            shared: self.shared,
            local: self.local,
            target,
        })
    }
}

impl Repo {
    /// Opens the repository of `target` in `location` (a local root or S3), creating it with
    /// `chunking` if `create` and it does not exist yet.
    pub(crate) fn open(
        location: &RepositoryConfig,
        target: &str,
        password: &SecretString,
        create: Option<Chunking>,
    ) -> Result<Self> {
        match Self::locate(location, target, password, create)? {
            Found::Open(repo) => Ok(repo),
            Found::New(creation) => creation.create(),
        }
    }

    /// Opens the repository of `target` in `location`, or, if `create` and it does not exist
    /// yet, derives its key and returns what creating it with `chunking` takes, writing nothing.
    pub(crate) fn locate(
        location: &RepositoryConfig,
        target: &str,
        password: &SecretString,
        create: Option<Chunking>,
    ) -> Result<Found> {
        let rerr = |action: &'static str| rerr(target, action);
        let shown = location.location_of(target);
        let backends = backends(location, target)?
            .to_backends()
            .map_err(rerr("open repository"))?;
        let opts = RepositoryOptions::default().no_cache(true);
        let base = if progress::wanted() {
            Repository::new_with_progress(&opts, &backends, progress::Bars)
        } else {
            Repository::new_with_progress(&opts, &backends, progress::Track(target.to_string()))
        }
        .map_err(rerr("open repository"))?;
        let exists = base.config_id().map_err(rerr("open repository"))?.is_some();
        if !exists && create.is_none() {
            // A listing of a bucket that is missing (or refused) can come back empty: say why
            // rather than "no backups yet".
            if location.s3.is_some()
                && let Err(message) = probe(location)
            {
                return Err(Error::Repository {
                    target: target.to_string(),
                    action: "open repository",
                    message,
                });
            }
            return Err(Error::NoRepository {
                target: target.to_string(),
                repo: shown,
            });
        }
        let local = location.s3.is_none().then(|| location.path.join(target));
        if let Some(chunking) = create.filter(|_| !exists) {
            let mut config = ConfigOptions::default().set_compression(3);
            if let Chunking::Fixed(size) = chunking {
                // Pages are compressed one by one: at 4 KiB, zstd's level 1 packs them as
                // tightly as level 3 for about two thirds of the CPU (BENCHMARKS.md).
                config = config
                    .set_compression(1)
                    .set_chunker(rustic_core::repofile::Chunker::FixedSize)
                    .set_chunk_size(bytesize::ByteSize::b(u64::from(size)));
            }
            // The key with restic's scrypt parameters (keys.rs), written before the config by
            // `create`: rustic's own key files cost four times the memory to open.
            let backend = backends.repository();
            let listed = local.as_ref().is_none_or(|dir| dir.join("keys").is_dir());
            let key = keys::new_master(&*backend, password, listed).map_err(|message| {
                Error::Repository {
                    target: target.to_string(),
                    action: "create repository",
                    message,
                }
            })?;
            return Ok(Found::New(Creation {
                base,
                backend,
                key,
                config,
                shared: location.s3.is_some(),
                local,
                target: target.to_string(),
            }));
        }
        let creds = Credentials::Password(password.expose_secret().to_string());
        let inner = base.open(&creds).map_err(|e| {
            if e.is_incorrect_password() {
                Error::WrongPassword {
                    target: target.to_string(),
                    repo: shown.clone(),
                }
            } else {
                rerr("open repository")(e)
            }
        })?;
        Ok(Found::Open(Self {
            inner,
            backend: backends.repository(),
            shared: location.s3.is_some(),
            local,
            target: target.to_string(),
        }))
    }

    pub(crate) fn err(
        &self,
        action: &'static str,
    ) -> impl FnOnce(Box<RusticError>) -> Error + use<> {
        rerr(&self.target, action)
    }

    /// Turns a message into this target's error for `action`: for failures of runbook's own
    /// repository code (`pages`, `unpack`), where [`Repo::err`] is for rustic's.
    pub(crate) fn fail(&self, action: &'static str) -> impl Fn(String) -> Error + Copy + '_ {
        move |message| Error::Repository {
            target: self.target.clone(),
            action,
            message,
        }
    }

    /// Backs up `spec.paths` and returns the saved snapshot.
    pub(crate) fn backup(self, spec: &BackupSpec<'_>) -> Result<Snapshot> {
        let target = self.target.clone();
        guard(&target, "backup", move || self.backup_inner(spec))
    }

    fn backup_inner(self, spec: &BackupSpec<'_>) -> Result<Snapshot> {
        let mut snap_opts = SnapshotOptions::default()
            .label(self.target.clone())
            .description(serde_json::to_string(&spec.meta).ok());
        if let Some(t) = spec.time {
            snap_opts = snap_opts.time(Some(t.to_zoned(TimeZone::UTC)));
        }
        let snap_opts = snap_opts
            .add_tags(&snapshot_tags(&spec.meta))
            .map_err(self.err("backup"))?;
        let snap = snap_opts.to_snapshot().map_err(self.err("backup"))?;
        let mut opts = BackupOptions::default()
            .parent_opts(ParentOptions::default().force(!spec.use_parent))
            .as_path(spec.as_path.map(Path::to_path_buf));
        opts.excludes.globs = spec.excludes.iter().map(|g| format!("!{g}")).collect();
        let source: PathList = spec.paths.iter().cloned().collect();
        let source = source.sanitize().map_err(|e| Error::Repository {
            target: self.target.clone(),
            action: "backup",
            message: e.to_string(),
        })?;
        let err = self.err("backup");
        let index_err = self.err("read index");
        let indexed = self.inner.to_indexed_ids().map_err(index_err)?;
        let saved = indexed.backup(&opts, &source, snap).map_err(err)?;
        Ok(describe(&self.target, &saved))
    }

    fn describe(&self, s: &SnapshotFile) -> Snapshot {
        describe(&self.target, s)
    }
}

/// The tags every runbook snapshot carries: `runbook`, its kind, and `keep-forever` when asked.
fn snapshot_tags(meta: &Meta) -> String {
    let forever = if meta.keep_forever {
        format!(",{KEEP_FOREVER}")
    } else {
        String::new()
    };
    format!("runbook,kind:{}{forever}", meta.kind)
}

fn describe(target: &str, s: &SnapshotFile) -> Snapshot {
    {
        let meta: Meta = s
            .description
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let (source_bytes, added_bytes, secs) = s.summary.as_ref().map_or((0, 0, 0.0), |m| {
            (
                m.total_bytes_processed,
                m.data_added_packed,
                m.total_duration,
            )
        });
        let mut phases = meta.phases.clone();
        if let Some(m) = &s.summary {
            phases.insert("store".into(), m.backup_duration);
            phases.insert(
                "open".into(),
                (m.total_duration - m.backup_duration).max(0.0),
            );
        }
        Snapshot {
            // In full: `Display` of rustic ids shows only the first 8 hex digits.
            id: s.id.to_hex().to_string(),
            time: s.time.timestamp(),
            target: if s.label.is_empty() {
                target.to_string()
            } else {
                s.label.clone()
            },
            kind: meta.kind,
            reason: meta.reason,
            source_bytes,
            added_bytes,
            duration_seconds: secs + meta.prepare_seconds,
            runbook_version: meta.runbook_version,
            paths: s.paths.to_string().split(',').map(str::to_string).collect(),
            keep_forever: s.tags.contains(KEEP_FOREVER),
            phases,
            stages: meta.stages,
        }
    }
}

impl Repo {
    fn raw_snapshots(&self) -> Result<Vec<SnapshotFile>> {
        let mut snaps = self
            .inner
            .get_all_snapshots()
            .map_err(self.err("list snapshots"))?;
        snaps.sort_by_key(|s| s.time.timestamp());
        Ok(snaps)
    }

    /// All snapshots, oldest first.
    pub(crate) fn snapshots(&self) -> Result<Vec<Snapshot>> {
        Ok(self
            .raw_snapshots()?
            .iter()
            .map(|s| self.describe(s))
            .collect())
    }

    fn find_raw(&self, wanted: &str) -> Result<SnapshotFile> {
        let snaps = self.raw_snapshots()?;
        let found = if wanted == "latest" {
            snaps
                .into_iter()
                .next_back()
                .into_iter()
                .collect::<Vec<_>>()
        } else {
            snaps
                .into_iter()
                .filter(|s| s.id.to_hex().starts_with(wanted))
                .collect()
        };
        match found.len() {
            1 => Ok(found
                .into_iter()
                .next()
                .ok_or_else(|| unreachable_none(&self.target))?),
            0 => Err(Error::NoSnapshot {
                target: self.target.clone(),
                wanted: if wanted == "latest" {
                    "exists yet".into()
                } else {
                    format!(
                        "matches id {wanted:?} (list them with `runbook snapshots {}`)",
                        self.target
                    )
                },
            }),
            n => Err(Error::NoSnapshot {
                target: self.target.clone(),
                wanted: format!(
                    "is uniquely identified by {wanted:?} ({n} match; give more digits)"
                ),
            }),
        }
    }

    /// The snapshot `wanted` (`latest` or an id prefix).
    pub(crate) fn find(&self, wanted: &str) -> Result<Snapshot> {
        self.find_raw(wanted).map(|s| self.describe(&s))
    }

    /// Checks structure and, with `read`, reads back and verifies packs: a share (`"25%"`),
    /// one slice of packs by id (`"3/30"`: the same packs every time, so 30 slices cover
    /// them all), or `"all"`.
    pub(crate) fn check(&self, read: Option<&str>) -> Result<CheckReport> {
        guard(&self.target, "check", || self.check_inner(read))
    }

    fn check_inner(&self, read: Option<&str>) -> Result<CheckReport> {
        let mut opts = CheckOptions::default();
        if let Some(spec) = read {
            let subset = ReadSubsetOption::from_str(spec).map_err(self.err("check"))?;
            opts = opts.read_data(true).read_data_subset(subset);
        }
        let results = self.inner.check(opts).map_err(self.err("check"))?;
        let mut report = CheckReport::default();
        for (level, e) in results.0 {
            let msg = without_backtrace(&e.to_string())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            // rustic does not export the level type; its Debug name is stable ("Error"/"Warn").
            if format!("{level:?}") == "Error" {
                report.errors.push(msg);
            } else {
                report.warnings.push(msg);
            }
        }
        Ok(report)
    }
}
