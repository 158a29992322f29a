//! The operations layer: what a backup, restore, drill or verification is ([`Operation`]), how
//! one runs end to end ([`execute`]: lock, run, retention and copies after a backup, an undo
//! point before a restore over live data), what it produced ([`Done`]) and, when it failed,
//! whether trying again may help ([`OpError`]). The worker and the CLI both run operations
//! through here, so a backup prunes and a restore over a live file keeps an undo point whichever
//! way it was asked for.

use std::path::PathBuf;

use runbook_backup::{BackupRequest, DbRestore, Engine};
use runbook_store::{Job, JobKind};
mod params;

use params::{BackupParams, DrillParams, RestoreParams, VerifyParams, params};

/// One operation on one target.
#[derive(Debug, Clone)]
pub enum Operation {
    /// A backup, with its reason; retention and copies follow it.
    Backup {
        /// Why (`api`, `schedule`, `manual`, …): shown with the snapshot.
        reason: String,
    },
    /// A restore of one snapshot.
    Restore {
        /// Snapshot id, prefix or `latest`.
        snapshot: String,
        /// Where it goes.
        into: RestoreInto,
        /// Replace what is there.
        force: bool,
    },
    /// A restore drill.
    Drill(runbook_drill::Request),
    /// A maintenance task (`[tasks.NAME]`, the job's target being its name).
    Task,
    /// Verification of slice `n` of `of` of the repository's packs.
    Verify {
        /// Which slice (1-based).
        n: u32,
        /// Of how many.
        of: u32,
    },
}

/// Where a restore goes.
#[derive(Debug, Clone)]
pub enum RestoreInto {
    /// Over the target's own live file (sqlite), after a `pre-restore` snapshot.
    Live,
    /// A path; when it is the target's live file, a `pre-restore` snapshot is taken first.
    Path(PathBuf),
    /// A database on the target's server.
    Database(String, DbRestore),
}

/// What an operation produced, typed until it is stored (as JSON) at the edge.
#[derive(Debug)]
pub enum Done {
    /// A backup, what retention removed after it, and the copies made.
    Backup(Backed),
    /// A restore, and the undo point taken before it when it replaced live data.
    Restore {
        /// What was restored where.
        report: runbook_backup::RestoreReport,
        /// The `pre-restore` snapshot.
        pre_restore: Option<runbook_backup::Snapshot>,
    },
    /// A drill's full report (recorded by the caller).
    Drill(Box<runbook_drill::Report>),
    /// A verification's result as stored.
    Verified(serde_json::Value),
    /// A maintenance task's run.
    Task(crate::tasks::TaskRun),
}

/// A backup, what retention removed after it, and the copies made.
#[derive(Debug)]
pub struct Backed {
    /// The new snapshot.
    pub snapshot: runbook_backup::Snapshot,
    /// How many snapshots retention removed.
    pub forgotten: usize,
    /// Copies to other repositories.
    pub copies: Vec<runbook_backup::CopyReport>,
}

/// Why an operation failed, and whether trying again later may help.
#[derive(Debug)]
pub struct OpError {
    /// One line.
    pub message: String,
    /// A busy target or a server briefly unreachable: worth retrying.
    pub temporary: bool,
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OpError {}

impl From<runbook_backup::Error> for OpError {
    fn from(e: runbook_backup::Error) -> Self {
        Self {
            temporary: e.is_temporary(),
            message: e.to_string(),
        }
    }
}

impl From<String> for OpError {
    fn from(message: String) -> Self {
        Self {
            message,
            temporary: false,
        }
    }
}

impl Operation {
    /// The operation a queued job asks for. A restore path is confined to the restore roots
    /// again here: the job may have been queued by an older version.
    ///
    /// # Errors
    /// Parameters that do not fit the job's kind, or a restore path outside the roots.
    pub fn from_job(engine: &Engine, job: &Job, now: jiff::Timestamp) -> Result<Self, OpError> {
        Ok(match job.kind {
            JobKind::Backup => {
                let BackupParams { reason } = params(job)?;
                Self::Backup { reason }
            }
            JobKind::Restore => {
                let p: RestoreParams = params(job)?;
                let into = match (p.into, p.to) {
                    (Some(db), _) => RestoreInto::Database(db, DbRestore::default()),
                    (None, Some(to)) => RestoreInto::Path(engine.api_restore_path(&to)?),
                    (None, None) => RestoreInto::Live,
                };
                Self::Restore {
                    snapshot: p.snapshot,
                    into,
                    force: p.force,
                }
            }
            JobKind::Drill => {
                let DrillParams {
                    snapshot,
                    backup_first,
                } = params(job)?;
                Self::Drill(runbook_drill::Request {
                    snapshot,
                    now,
                    backup_first,
                })
            }
            JobKind::Verify => {
                let VerifyParams { n, of } = params(job)?;
                Self::Verify { n, of }
            }
            JobKind::Task => Self::Task,
        })
    }
}

/// Runs `op` on `target` to completion on the calling (blocking) thread; `progress` hears a
/// drill's steps.
///
/// # Errors
/// Why it failed, and whether that may pass.
pub fn execute(
    engine: &Engine,
    target: &str,
    op: Operation,
    now: jiff::Timestamp,
    progress: &mut dyn FnMut(&str),
) -> Result<Done, OpError> {
    match op {
        Operation::Backup { reason } => {
            let req = BackupRequest {
                reason,
                time: None,
                keep_forever: false,
            };
            Ok(Done::Backup(backup(engine, target, &req, now)?))
        }
        Operation::Restore {
            snapshot,
            into,
            force,
        } => {
            let (report, pre_restore) = restore(engine, target, &snapshot, into, force)?;
            Ok(Done::Restore {
                report,
                pre_restore,
            })
        }
        Operation::Drill(req) => {
            let report = runbook_drill::run(engine, target, &req, progress);
            Ok(Done::Drill(Box::new(report)))
        }
        Operation::Task => {
            let task = engine.config().tasks.get(target).ok_or_else(|| {
                OpError::from(format!("no task named `{target}` in the configuration"))
            })?;
            Ok(Done::Task(crate::tasks::run(engine, task)?))
        }
        Operation::Verify { n, of } => match engine.verify_slice(target, n, of) {
            Ok(report) => Ok(Done::Verified(
                serde_json::json!({ "slice": format!("{n}/{of}"), "check": report }),
            )),
            // Nothing stored yet: nothing to verify.
            Err(runbook_backup::Error::NoRepository { .. }) => Ok(Done::Verified(
                serde_json::json!({ "slice": format!("{n}/{of}"), "check": null }),
            )),
            Err(e) => Err(e.into()),
        },
    }
}

/// Backs up `target`, then applies its retention and makes its copies.
///
/// # Errors
/// Why it failed (a retention failure fails it, but the snapshot stays).
pub fn backup(
    engine: &Engine,
    target: &str,
    req: &BackupRequest,
    now: jiff::Timestamp,
) -> Result<Backed, OpError> {
    let (snapshot, plan, copies) = engine.backup_and_retain(target, req, now)?;
    Ok(Backed {
        snapshot,
        forgotten: plan.remove.len(),
        copies,
    })
}

/// Restores `snapshot` of `target`; a restore that replaces the target's live file takes a
/// `pre-restore` snapshot first (returned: restoring it undoes the restore).
///
/// # Errors
/// Why it failed; nothing was restored when the undo point could not be taken.
pub fn restore(
    engine: &Engine,
    target: &str,
    snapshot: &str,
    into: RestoreInto,
    force: bool,
) -> Result<
    (
        runbook_backup::RestoreReport,
        Option<runbook_backup::Snapshot>,
    ),
    OpError,
> {
    let live = engine
        .config()
        .target(target)
        .map_err(runbook_backup::Error::from)?
        .kind
        .live_file()
        .map(std::path::Path::to_path_buf);
    let (to, force) = match into {
        RestoreInto::Database(db, opts) => {
            let report = engine.restore_database(
                target,
                snapshot,
                &db,
                &DbRestore {
                    force: force || opts.force,
                    ..opts
                },
            )?;
            return Ok((report, None));
        }
        RestoreInto::Path(to) => (to, force),
        RestoreInto::Live => {
            let Some(path) = live.clone() else {
                return Err(format!(
                    "target `{target}`: restoring over the live source is supported for sqlite targets; give \"to\""
                )
                .into());
            };
            (path, true)
        }
    };
    // Undo point: the live data as it is now, before it is overwritten.
    let replaces_live = force && live.as_deref().is_some_and(|l| same_file(l, &to));
    // `latest` means the newest snapshot before the undo point, not the undo point itself.
    let mut snapshot = snapshot.to_string();
    if replaces_live && snapshot == "latest" {
        let newest = engine.snapshots(target)?.into_iter().max_by_key(|s| s.time);
        if let Some(newest) = newest {
            snapshot = newest.id;
        }
    }
    let pre_restore = if replaces_live {
        runbook_backup::refuse_open_sqlite(&to)?;
        let pre = engine
            .backup(
                target,
                &BackupRequest {
                    reason: "pre-restore".into(),
                    time: None,
                    keep_forever: false,
                },
            )
            .map_err(|e| OpError {
                temporary: e.is_temporary(),
                message: format!("pre-restore snapshot failed, nothing was restored: {e}"),
            })?;
        Some(pre)
    } else {
        None
    };
    let report = engine.restore(target, &snapshot, &to, force)?;
    Ok((report, pre_restore))
}

/// Whether `a` and `b` name the same file (or `b` does not exist yet and the paths are equal).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
