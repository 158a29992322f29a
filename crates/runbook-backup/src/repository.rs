//! The repository: restic's format through `rustic_core`. This is the only module that names a
//! rustic type; everything else sees [`Repo`] and our own [`Snapshot`].
//!
//! Error rule: every rustic error is flattened here to one line (`one_line`) with the target
//! named, and an incorrect password becomes [`Error::WrongPassword`].

mod progress;

use std::{
    path::{Path, PathBuf},
    str::FromStr,
};

use jiff::{Span, Timestamp, tz::TimeZone};
use runbook_config::Keep;
use rustic_backend::BackendOptions;
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, IndexedFullStatus, KeepOptions,
    KeyOptions, LocalDestination, LsOptions, NoProgressBars, OpenStatus, ParentOptions, PathList,
    PruneOptions, ReadSubsetOption, RepairIndexOptions, RepairSnapshotsOptions, Repository,
    RepositoryOptions, RestoreOptions, RusticError, SnapshotOptions, StringList,
    repofile::SnapshotFile,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    Error, Result,
    snapshot::{Meta, Snapshot},
};

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

/// An open repository of one target.
pub(crate) struct Repo {
    inner: Repository<OpenStatus>,
    target: String,
}

/// How many [`guard`]ed operations are running in this process.
static GUARDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// True while repository work runs whose panics (from the repository library's worker
/// threads) are caught and reported as one error line: a panic hook stays quiet for them.
pub fn panics_are_reported() -> bool {
    GUARDED.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// Runs rustic work that may panic (its restore unwraps read and write errors in worker
/// threads) and turns a panic into an [`Error`] naming the target and the cause.
fn guard<T>(target: &str, action: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    GUARDED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    caught.unwrap_or_else(|payload| {
        if let Some(failed) = payload.downcast_ref::<crate::dump::StreamFailed>() {
            return Err(Error::Repository {
                target: target.to_string(),
                action,
                message: format!("{} (no snapshot was written)", failed.0),
            });
        }
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown failure");
        Err(Error::Repository {
            target: target.to_string(),
            action,
            message: panic_cause(text),
        })
    })
}

/// Words in an error that mean the repository's data did not read back intact.
pub(crate) const DAMAGED: &str = "repository data is damaged";

/// The readable part of a panic message: the `guidance` of a `RusticError` it wraps (with its
/// `{placeholders}` filled from the error's context), without the `unwrap` boilerplate or a
/// backtrace.
fn panic_cause(text: &str) -> String {
    let text = text
        .strip_prefix("called `Result::unwrap()` on an `Err` value: ")
        .unwrap_or(text);
    let mut cause = text
        .split_once("guidance: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(text, |(g, _)| g)
        .to_string();
    for (key, value) in debug_context(text) {
        cause = cause.replace(&format!("{{{key}}}"), &value);
    }
    let hint = if cause.contains("MAC check failed") || cause.contains("decrypt") {
        " (repository data is damaged; the next backup stores it again; `runbook check --read-data 100` shows where)"
    } else {
        ""
    };
    let cause = without_backtrace(&cause);
    let cause: String = cause.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{}{hint}", cause.chars().take(300).collect::<String>())
}

/// The `("key", "value")` pairs of a `RusticError`'s Debug output.
fn debug_context(text: &str) -> Vec<(String, String)> {
    let Some((_, rest)) = text.split_once("context: [") else {
        return Vec::new();
    };
    let rest = rest.split_once(']').map_or(rest, |(c, _)| c);
    let mut out = Vec::new();
    for pair in rest.split("), (") {
        let pair = pair.trim_matches(['(', ')', ' ']);
        if let Some((k, v)) = pair.split_once("\", \"") {
            out.push((
                k.trim_matches('"').to_string(),
                v.trim_matches('"').to_string(),
            ));
        }
    }
    out
}

/// Everything before a `Backtrace:` section: error lines are one line.
fn without_backtrace(text: &str) -> &str {
    text.split_once("Backtrace:").map_or(text, |(head, _)| head)
}

/// Maps a rustic error to ours, naming the target and what was being done.
fn rerr(target: &str, action: &'static str) -> impl FnOnce(Box<RusticError>) -> Error + use<> {
    let target = target.to_string();
    move |e| Error::Repository {
        target,
        action,
        message: one_line(&e),
    }
}

fn one_line(e: &RusticError) -> String {
    let log = e.display_log();
    let log = log.strip_prefix("Error: ").unwrap_or(&log);
    without_backtrace(log)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Repo {
    /// Opens the repository of `target` under `root`, creating it with `chunking` if `create`
    /// and it does not exist yet.
    pub(crate) fn open(
        root: &Path,
        target: &str,
        password: &SecretString,
        create: Option<Chunking>,
    ) -> Result<Self> {
        let dir = root.join(target);
        let rerr = |action: &'static str| rerr(target, action);
        let exists = dir.join("config").exists();
        if !exists && create.is_none() {
            return Err(Error::NoRepository {
                target: target.to_string(),
                repo: dir,
            });
        }
        let location = dir.to_str().ok_or_else(|| Error::Repository {
            target: target.to_string(),
            action: "open repository",
            message: format!("path {} is not valid UTF-8", dir.display()),
        })?;
        let backends = BackendOptions::default()
            .repository(location)
            .to_backends()
            .map_err(rerr("open repository"))?;
        let opts = RepositoryOptions::default().no_cache(true);
        let base = if progress::wanted() {
            Repository::new_with_progress(&opts, &backends, progress::Bars)
        } else {
            Repository::new_with_progress(&opts, &backends, NoProgressBars)
        }
        .map_err(rerr("open repository"))?;
        let creds = Credentials::Password(password.expose_secret().to_string());
        let inner = match create {
            Some(chunking) if !exists => {
                std::fs::create_dir_all(&dir)
                    .map_err(Error::io(format!("cannot create {}", dir.display())))?;
                let mut config = ConfigOptions::default().set_compression(3);
                if let Chunking::Fixed(size) = chunking {
                    config = config
                        .set_chunker(rustic_core::repofile::Chunker::FixedSize)
                        .set_chunk_size(bytesize::ByteSize::b(u64::from(size)));
                }
                base.init(&creds, &KeyOptions::default(), &config)
                    .map_err(rerr("create repository"))?
            }
            _ => base.open(&creds).map_err(|e| {
                if e.is_incorrect_password() {
                    Error::WrongPassword {
                        target: target.to_string(),
                        repo: dir.clone(),
                    }
                } else {
                    rerr("open repository")(e)
                }
            })?,
        };
        Ok(Self {
            inner,
            target: target.to_string(),
        })
    }

    fn err(&self, action: &'static str) -> impl FnOnce(Box<RusticError>) -> Error + use<> {
        rerr(&self.target, action)
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
            .add_tags(&format!("runbook,kind:{}", spec.meta.kind))
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
        Snapshot {
            id: s.id.to_string(),
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
                .filter(|s| s.id.to_string().starts_with(wanted))
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

    /// Streams the file recorded at `path` in snapshot `id` into `out`.
    pub(crate) fn dump_to(self, id: &str, path: &str, out: &mut dyn std::io::Write) -> Result<()> {
        let target = self.target.clone();
        guard(&target, "restore", move || {
            let (indexed, snap, target) = self.indexed(id)?;
            let node = indexed
                .node_from_snapshot_and_path(&snap, path.trim_start_matches('/'))
                .map_err(rerr(&target, "restore"))?;
            let mut out = out;
            indexed
                .dump(&node, &mut out)
                .map_err(rerr(&target, "restore"))
        })
    }

    /// The snapshot `id` and the repository with its full index loaded, for reading data.
    fn indexed(self, id: &str) -> Result<(Repository<IndexedFullStatus>, SnapshotFile, String)> {
        let snap = self.find_raw(id)?;
        let target = self.target;
        let indexed = self
            .inner
            .to_indexed()
            .map_err(rerr(&target, "read index"))?;
        Ok((indexed, snap, target))
    }

    /// Restores the whole tree of snapshot `id` into the (new, empty) directory `dest`.
    pub(crate) fn restore_tree(self, id: &str, dest: &Path) -> Result<()> {
        let target = self.target.clone();
        guard(&target, "restore", move || {
            self.restore_tree_inner(id, dest)
        })
    }

    fn restore_tree_inner(self, id: &str, dest: &Path) -> Result<()> {
        let (indexed, snap, target) = self.indexed(id)?;
        let err = || rerr(&target, "restore");
        let node = indexed
            .node_from_snapshot_and_path(&snap, "")
            .map_err(err())?;
        let ls = LsOptions::default().recursive(true);
        let dest_str = dest.to_str().ok_or_else(|| Error::Repository {
            target: target.clone(),
            action: "restore",
            message: format!("path {} is not valid UTF-8", dest.display()),
        })?;
        let local = LocalDestination::new(dest_str, true, !node.is_dir()).map_err(err())?;
        let opts = RestoreOptions::default();
        let plan = indexed
            .prepare_restore(&opts, indexed.ls(&node, &ls).map_err(err())?, &local, false)
            .map_err(err())?;
        indexed
            .restore(plan, &opts, indexed.ls(&node, &ls).map_err(err())?, &local)
            .map_err(err())
    }

    /// Re-hashes the files restored from snapshot `id` under `dest` chunk by chunk against the
    /// chunk ids the snapshot records. Returns (files checked, problems).
    pub(crate) fn verify_tree(self, id: &str, dest: &Path) -> Result<(usize, Vec<String>)> {
        let target = self.target.clone();
        guard(&target, "verify", move || self.verify_tree_inner(id, dest))
    }

    fn verify_tree_inner(self, id: &str, dest: &Path) -> Result<(usize, Vec<String>)> {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let (indexed, snap, target) = self.indexed(id)?;
        let err = || rerr(&target, "verify");
        let node = indexed
            .node_from_snapshot_and_path(&snap, "")
            .map_err(err())?;
        let ls = LsOptions::default().recursive(true);
        let mut checked = 0;
        let mut problems = Vec::new();
        let mut buf = Vec::new();
        for item in indexed.ls(&node, &ls).map_err(err())? {
            let (path, node) = item.map_err(err())?;
            if !node.is_file() {
                continue;
            }
            checked += 1;
            let file = dest.join(&path);
            let shown = format!("/{}", path.display());
            let mut f = match std::fs::File::open(&file) {
                Ok(f) => std::io::BufReader::with_capacity(1 << 20, f),
                Err(e) => {
                    problems.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            let mut differs = false;
            for blob in node.content.iter().flatten() {
                let entry = indexed.get_index_entry(blob).map_err(err())?;
                buf.resize(entry.data_length() as usize, 0);
                if f.read_exact(&mut buf).is_err()
                    || hex::encode(Sha256::digest(&buf)) != *blob.to_hex()
                {
                    differs = true;
                    break;
                }
            }
            // Same chunks, but more bytes after them: also not the file the snapshot holds.
            if differs || f.read(&mut [0u8; 1]).is_ok_and(|n| n > 0) {
                problems.push(format!("{shown}: content differs from the snapshot"));
            }
        }
        Ok((checked, problems))
    }

    /// Applies `keep` as of `now`: removes the snapshots it does not keep and, unless
    /// `dry_run`, prunes data no snapshot references any more.
    pub(crate) fn forget(&self, keep: &Keep, now: Timestamp, dry_run: bool) -> Result<ForgetPlan> {
        let snaps = self.raw_snapshots()?;
        if keep.is_empty() || snaps.is_empty() {
            return Ok(ForgetPlan {
                keep: snaps
                    .iter()
                    .map(|s| (self.describe(s), vec!["no keep rule".into()]))
                    .collect(),
                remove: Vec::new(),
            });
        }
        let to_i32 = |n: Option<u32>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let mut opts = KeepOptions::default()
            .keep_last(to_i32(keep.last))
            .keep_hourly(to_i32(keep.hourly))
            .keep_daily(to_i32(keep.daily))
            .keep_weekly(to_i32(keep.weekly))
            .keep_monthly(to_i32(keep.monthly));
        if let Some(within) = keep.within {
            let secs = i64::try_from(within.as_secs()).unwrap_or(i64::MAX);
            let span = if secs % 86_400 == 0 {
                Span::new().days(secs / 86_400)
            } else {
                Span::new().seconds(secs)
            };
            opts = opts.keep_within(Some(span));
        }
        let decided = opts
            .apply(snaps, &now.to_zoned(TimeZone::UTC))
            .map_err(self.err("forget"))?;
        let mut plan = ForgetPlan::default();
        let mut remove_ids = Vec::new();
        for d in decided {
            let s = self.describe(&d.snapshot);
            if d.keep {
                plan.keep.push((s, d.reasons));
            } else {
                remove_ids.push(d.snapshot.id);
                plan.remove.push(s);
            }
        }
        if !dry_run && !remove_ids.is_empty() {
            self.inner
                .delete_snapshots(&remove_ids)
                .map_err(self.err("forget"))?;
            crate::failpoint("forget-before-prune");
            self.prune()?;
        }
        Ok(plan)
    }

    /// Rebuilds the index against the packs that exist: packs that are gone (deleted, or
    /// moved to quarantine) leave the index, so their data counts as not stored and the next
    /// backup stores it again; packs the index lacks are read and added. Writes only when
    /// something changed.
    pub(crate) fn heal_index(&self) -> Result<()> {
        self.inner
            .repair_index(&RepairIndexOptions::default(), false)
            .map_err(self.err("repair index"))
    }

    /// restic's documented recovery after data was lost (`repair snapshots --forget`): every
    /// snapshot that refers to data no longer in the index is rewritten without it (a file
    /// that lost content keeps its name with `.repaired` appended and is tagged `repaired`),
    /// and one whose root is unreadable is removed, so `check` is clean again and what can
    /// be restored is restorable. Snapshots that lost nothing are left as they are.
    pub(crate) fn repair_snapshots(self) -> Result<()> {
        let target = self.target.clone();
        guard(&target, "repair snapshots", move || {
            let err = rerr(&self.target, "repair snapshots");
            let indexed = self
                .inner
                .to_indexed()
                .map_err(rerr(&self.target, "read index"))?;
            let snaps = indexed
                .get_all_snapshots()
                .map_err(rerr(&self.target, "list snapshots"))?;
            let tags = StringList::from_str("runbook,repaired").map_err(|e| Error::Repository {
                target: self.target.clone(),
                action: "repair snapshots",
                message: e.to_string(),
            })?;
            let opts = RepairSnapshotsOptions::default().tag(vec![tags]);
            indexed.repair_snapshots(&opts, snaps, false).map_err(err)
        })
    }

    /// Removes data no snapshot references. Callers hold the target lock, so no backup is
    /// writing and packs can go at once.
    pub(crate) fn prune(&self) -> Result<()> {
        let opts = PruneOptions::default().instant_delete(true);
        let plan = self.inner.prune_plan(&opts).map_err(self.err("prune"))?;
        self.inner.prune(&opts, plan).map_err(self.err("prune"))
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

fn unreachable_none(target: &str) -> Error {
    Error::NoSnapshot {
        target: target.to_string(),
        wanted: "(internal: empty match)".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_text_becomes_one_filled_line() {
        let text = "called `Result::unwrap()` on an `Err` value: RusticError { kind: InputOutput, guidance: \"Failed to open the file `{path}`. Please make sure the file exists.\", context: [(\"path\", \"/srv/x.db\")], source: None }\nBacktrace: 0: std::x";
        let line = panic_cause(text);
        assert_eq!(
            line,
            "Failed to open the file `/srv/x.db`. Please make sure the file exists."
        );
        assert_eq!(
            panic_cause("called `Result::unwrap()` on an `Err` value: disk on fire"),
            "disk on fire"
        );
    }
}
