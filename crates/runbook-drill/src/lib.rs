//! Restore drills: prove a target's backups restore by doing it.
//!
//! A drill picks a snapshot, restores it into scratch (a file or directory in
//! `data_dir/scratch/drills`, or a database `runbook_drill_<target>_<time>`), runs the built-in
//! checks for the target's kind and the configured ones, measures the restore time (RTO) and
//! the data's age (RPO), and always removes the scratch. A drill killed mid-way leaves scratch
//! behind; the next drill of the target removes it first (it holds the target's drill lock, so
//! what it finds is provably dead) and reports it.

mod checks;
mod ready;
mod report;

use std::{path::PathBuf, time::Instant};

use jiff::Timestamp;
use runbook_backup::{Database, DbRestore, Engine, ScratchDir, Snapshot, TargetLock};
use runbook_config::{Drill, DrillSnapshot, Target, TargetKind};
use serde::{Deserialize, Serialize};

pub use report::{markdown, parse_since};

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every check passed.
    Passed,
    /// The drill ran and a check failed: the backup is not proven.
    Failed,
    /// The drill could not run (busy, unknown target, unreachable repository).
    Error,
}

impl Outcome {
    /// `passed`, `failed` or `error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Error => "error",
        }
    }
}

/// One check: what was expected, what was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// `restore`, `integrity_check`, `tables`, `sql: …`, `ready_command`, …
    pub name: String,
    /// What passing means.
    pub expected: String,
    /// What was found.
    pub actual: String,
    /// Whether it passed.
    pub ok: bool,
}

impl CheckResult {
    pub(crate) fn new(
        name: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
        ok: bool,
    ) -> Self {
        Self {
            name: name.into(),
            expected: expected.into(),
            actual: actual.into(),
            ok,
        }
    }
}

/// The snapshot a drill restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// Full id.
    pub id: String,
    /// When it was taken.
    pub time: Timestamp,
    /// Why it was taken.
    pub reason: String,
}

/// What a drill did and found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The target drilled.
    pub target: String,
    /// Its kind.
    pub kind: String,
    /// Passed, failed or error.
    pub outcome: Outcome,
    /// The snapshot restored.
    pub snapshot: Option<SnapshotRef>,
    /// Drill start (the clock's time).
    pub started_at: Timestamp,
    /// Drill end.
    pub finished_at: Timestamp,
    /// Seconds the restore took: the measured recovery time (RTO).
    pub restore_seconds: Option<f64>,
    /// Age of the restored data when the drill started: the measured recovery point (RPO).
    pub data_age_seconds: Option<f64>,
    /// Seconds spent in checks after the restore.
    pub check_seconds: f64,
    /// Where the snapshot was restored (a path or `database NAME`); removed afterwards.
    pub scratch: Option<String>,
    /// Every check, in the order run.
    pub checks: Vec<CheckResult>,
    /// Scratch left by an earlier drill that was killed, removed before this one.
    pub leftovers_removed: Vec<String>,
    /// Why the drill could not run (outcome `error`).
    pub error: Option<String>,
}

impl Report {
    /// Names of the checks that failed.
    #[must_use]
    pub fn failed_checks(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.clone())
            .collect()
    }

    /// The record for the state store.
    #[must_use]
    pub fn to_record(&self, requested_by: &str) -> runbook_store::NewDrill {
        #[allow(clippy::cast_possible_truncation)]
        let ms = |s: Option<f64>| s.map(|s| (s * 1000.0).round() as i64);
        runbook_store::NewDrill {
            target: self.target.clone(),
            snapshot_id: self.snapshot.as_ref().map(|s| s.id.clone()),
            snapshot_time: self.snapshot.as_ref().map(|s| s.time.as_millisecond()),
            started_at: self.started_at.as_millisecond(),
            finished_at: self.finished_at.as_millisecond(),
            restore_ms: ms(self.restore_seconds),
            data_age_ms: ms(self.data_age_seconds),
            outcome: self.outcome.as_str().to_string(),
            failed_checks: self.failed_checks(),
            report: serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
            requested_by: requested_by.to_string(),
        }
    }

    /// One line for the ops log and the terminal.
    #[must_use]
    pub fn summary(&self) -> String {
        let snap = self.snapshot.as_ref().map_or_else(
            || "no snapshot".to_string(),
            |s| format!("snapshot {}", short(&s.id)),
        );
        let rto = self
            .restore_seconds
            .map_or_else(String::new, |s| format!(", RTO {}", seconds(s)));
        let rpo = self
            .data_age_seconds
            .map_or_else(String::new, |s| format!(", data age {}", seconds(s)));
        let why = match (&self.error, self.failed_checks()) {
            (Some(e), _) => format!(": {e}"),
            (None, f) if !f.is_empty() => {
                let first = self
                    .checks
                    .iter()
                    .find(|c| !c.ok)
                    .map_or(String::new(), |c| {
                        format!(" ({}: expected {}, got {})", c.name, c.expected, c.actual)
                    });
                format!(": failed {}{first}", f.join(", "))
            }
            _ => String::new(),
        };
        format!("drill {}: {snap}{rto}{rpo}{why}", self.outcome.as_str())
    }
}

/// Records a finished drill in the state store and the ops log (action `drill.run`).
///
/// # Errors
/// State store errors.
pub async fn record(
    store: &runbook_store::Store,
    report: &Report,
    actor: &str,
) -> runbook_store::Result<runbook_store::DrillRecord> {
    let rec = store.record_drill(report.to_record(actor)).await?;
    let detail = serde_json::json!({
        "drill": rec.id,
        "snapshot": rec.drill.snapshot_id,
        "restore_seconds": report.restore_seconds,
        "data_age_seconds": report.data_age_seconds,
        "failed_checks": rec.drill.failed_checks,
        "error": report.error,
    });
    store
        .append(
            runbook_store::NewEntry {
                actor: actor.to_string(),
                action: "drill.run".into(),
                target: report.target.clone(),
                outcome: report.outcome.as_str().to_string(),
                detail: detail.to_string(),
            },
            report.finished_at.as_millisecond(),
        )
        .await?;
    Ok(rec)
}

/// What to drill.
#[derive(Debug, Clone)]
pub struct Request {
    /// A snapshot id (prefix) instead of the configured choice.
    pub snapshot: Option<String>,
    /// The drill's time: data age is measured against it.
    pub now: Timestamp,
    /// Take a backup (reason `restore-drill`) first and drill that snapshot: the seeds'
    /// "run a backup with reason restore-drill, then restore the latest" in one step.
    pub backup_first: bool,
}

/// `8` hex digits of a snapshot id.
fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// `2.31s`, `4m05s`, `3d02h`.
#[must_use]
pub fn seconds(s: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = s.max(0.0) as u64;
    if s < 60.0 {
        format!("{s:.2}s")
    } else if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else if whole < 86_400 {
        format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
    } else {
        format!("{}d{:02}h", whole / 86_400, (whole % 86_400) / 3600)
    }
}

/// The prefix of every scratch database of `target`'s drills.
#[must_use]
pub fn database_prefix(target: &str) -> String {
    let mut t: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    t.truncate(33);
    format!("runbook_drill_{t}_")
}

/// The scratch database of a drill of `target` at `now`: `runbook_drill_<target>_<time>`.
fn scratch_database(target: &str, now: Timestamp) -> String {
    format!(
        "{}{}",
        database_prefix(target),
        now.strftime("%Y%m%d%H%M%S")
    )
}

/// A scratch database name belongs to `target` when it is its prefix plus the 14-digit time.
fn is_scratch_database(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 14 && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// Where drills of every target restore files and SQLite databases.
#[must_use]
pub fn scratch_root(engine: &Engine) -> PathBuf {
    engine.config().scratch_dir().join("drills")
}

/// Runs a drill of `target`; `progress` hears each step. Never fails: a drill that cannot run
/// is a report with outcome `error`.
pub fn run(engine: &Engine, target: &str, req: &Request, progress: &mut dyn FnMut(&str)) -> Report {
    let started = Instant::now();
    let mut report = Report {
        target: target.to_string(),
        kind: String::new(),
        outcome: Outcome::Passed,
        snapshot: None,
        started_at: req.now,
        finished_at: req.now,
        restore_seconds: None,
        data_age_seconds: None,
        check_seconds: 0.0,
        scratch: None,
        checks: Vec::new(),
        leftovers_removed: Vec::new(),
        error: None,
    };
    if let Err(e) = drill(engine, target, req, progress, &mut report) {
        report.error = Some(e);
    }
    report.outcome = if report.error.is_some() {
        Outcome::Error
    } else if report.checks.iter().all(|c| c.ok) {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    let elapsed = jiff::SignedDuration::try_from(started.elapsed()).unwrap_or_default();
    report.finished_at = req.now.checked_add(elapsed).unwrap_or(req.now);
    report
}

/// The drill proper; an `Err` means it could not run at all.
fn drill(
    engine: &Engine,
    name: &str,
    req: &Request,
    progress: &mut dyn FnMut(&str),
    report: &mut Report,
) -> Result<(), String> {
    let mut req = std::borrow::Cow::Borrowed(req);
    let config = engine.config();
    let target = config.target(name).map_err(|e| e.to_string())?.clone();
    report.kind = target.kind.name().to_string();
    let settings = target.drill.clone().unwrap_or_default();
    // One drill per target at a time; what an earlier drill left is provably dead.
    let _lock = TargetLock::acquire(&config.data_dir, &format!("{name}.drill"))
        .map_err(|e| format!("{e} (another drill of this target is running)"))?;
    let root = scratch_root(engine);
    let marker = marker_file(engine, name);
    let database = match target.kind {
        TargetKind::Postgres(_) | TargetKind::Mariadb(_) => Some(
            engine
                .database(name, settings.server.as_ref())
                .map_err(|e| e.to_string())?,
        ),
        _ => None,
    };
    report.leftovers_removed = remove_dead_scratch(engine, name, database.as_ref())?;
    if req.backup_first {
        progress("backing up (reason restore-drill)");
        let fresh = engine.backup(
            name,
            &runbook_backup::BackupRequest {
                reason: "restore-drill".into(),
                time: None,
            },
        );
        match fresh {
            Ok(snap) => {
                report.checks.push(CheckResult::new(
                    "backup",
                    "a fresh backup to drill",
                    format!("snapshot {} saved", short(&snap.id)),
                    true,
                ));
                req = std::borrow::Cow::Owned(Request {
                    snapshot: Some(snap.id),
                    ..req.into_owned()
                });
            }
            Err(e) => {
                report.checks.push(CheckResult::new(
                    "backup",
                    "a fresh backup to drill",
                    e.to_string(),
                    false,
                ));
                return Ok(());
            }
        }
    }
    progress("choosing the snapshot");
    let snapshots = engine.snapshots(name).map_err(|e| e.to_string())?;
    let Some(snapshot) = choose(&snapshots, &req, &settings) else {
        let why = match &req.snapshot {
            Some(id) => format!("no snapshot {id:?}"),
            None if snapshots.is_empty() => "the target has no snapshot".into(),
            None => "no snapshot within the configured window".into(),
        };
        report.checks.push(CheckResult::new(
            "snapshot",
            "a snapshot to restore",
            why,
            false,
        ));
        return Ok(());
    };
    report.snapshot = Some(SnapshotRef {
        id: snapshot.id.clone(),
        time: snapshot.time,
        reason: snapshot.reason.clone(),
    });
    let age = req.now.duration_since(snapshot.time).as_secs_f64().max(0.0);
    report.data_age_seconds = Some(age);
    if let Some(max) = settings.max_data_age {
        report.checks.push(CheckResult::new(
            "max_data_age",
            format!("at most {}", seconds(max.as_secs_f64())),
            seconds(age),
            age <= max.as_secs_f64(),
        ));
    }
    let scratch = ScratchDir::new(&root, name).map_err(|e| e.to_string())?;
    progress(&format!("restoring snapshot {}", short(&snapshot.id)));
    if let Some(server) = &database {
        let db = scratch_database(name, req.now);
        // Never touch a database this drill did not create: a name already taken (another
        // runbook drilling a same-named target this second) stops the drill instead.
        if server
            .databases(&db)
            .map_err(|e| e.to_string())?
            .contains(&db)
        {
            return Err(format!(
                "scratch database {db} already exists on the server; left alone (is another drill of a target named {name} running?)"
            ));
        }
        std::fs::write(&marker, &db)
            .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    }
    let restore_started = Instant::now();
    let restored = restore(engine, &target, &settings, &snapshot, &scratch, req.now);
    let restore_seconds = restore_started.elapsed().as_secs_f64();
    let place = match restored {
        Ok(place) => {
            report.restore_seconds = Some(restore_seconds);
            report.checks.push(CheckResult::new(
                "restore",
                "the snapshot restores",
                format!("restored in {}", seconds(restore_seconds)),
                true,
            ));
            place
        }
        Err((place, e)) => {
            report.checks.push(CheckResult::new(
                "restore",
                "the snapshot restores",
                e,
                false,
            ));
            remove_scratch_database(place.as_ref(), database.as_ref(), &marker, report);
            return Ok(());
        }
    };
    report.scratch = Some(place.describe());
    if let Some(max) = settings.max_restore {
        report.checks.push(CheckResult::new(
            "max_restore",
            format!("at most {}", seconds(max.as_secs_f64())),
            seconds(restore_seconds),
            restore_seconds <= max.as_secs_f64(),
        ));
    }
    let checks_started = Instant::now();
    progress("checking the restored data");
    checks::run(
        engine,
        &target,
        &settings,
        &snapshot,
        &place,
        database.as_ref(),
        report,
    );
    if let Some(cmd) = &settings.ready_command {
        progress("running ready_command");
        report.checks.push(ready::run(
            cmd,
            settings.ready_timeout,
            &config.base_dir(),
            &place,
            database.as_ref(),
            &target,
            scratch.path(),
        ));
    }
    report.check_seconds = checks_started.elapsed().as_secs_f64();
    progress("removing the scratch copy");
    remove_scratch_database(Some(&place), database.as_ref(), &marker, report);
    drop(scratch);
    Ok(())
}

fn marker_file(engine: &Engine, target: &str) -> PathBuf {
    engine
        .config()
        .data_dir
        .join("locks")
        .join(format!("{target}.drill-database"))
}

/// Removes what killed drills of `target` left: scratch directories of dead processes, and
/// the scratch database named in the marker file. The caller holds the drill lock.
fn remove_dead_scratch(
    engine: &Engine,
    name: &str,
    database: Option<&Database>,
) -> Result<Vec<String>, String> {
    let mut removed: Vec<String> = runbook_backup::remove_leftovers(&scratch_root(engine), name)
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    let marker = marker_file(engine, name);
    if let (Some(db), Ok(old)) = (database, std::fs::read_to_string(&marker)) {
        let old = old.trim();
        if is_scratch_database(&database_prefix(name), old) {
            if db
                .databases(old)
                .map_err(|e| e.to_string())?
                .iter()
                .any(|d| d == old)
            {
                removed.push(format!("database {old}"));
            }
            db.drop_database(old).map_err(|e| e.to_string())?;
        }
        let _ = std::fs::remove_file(&marker);
    }
    Ok(removed)
}

/// Removes what killed drills of `target` left behind, unless a drill of it is running now
/// (then that drill owns what is there). `serve` calls it at start; every drill does it first.
///
/// # Errors
/// Unknown target, or a scratch database that cannot be dropped.
pub fn clean_leftovers(engine: &Engine, target: &str) -> Result<Vec<String>, String> {
    let t = engine.config().target(target).map_err(|e| e.to_string())?;
    let Ok(_lock) = TargetLock::acquire(&engine.config().data_dir, &format!("{target}.drill"))
    else {
        return Ok(Vec::new());
    };
    let database = match t.kind {
        TargetKind::Postgres(_) | TargetKind::Mariadb(_) => {
            let server = t.drill.as_ref().and_then(|d| d.server.as_ref());
            Some(engine.database(target, server).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    remove_dead_scratch(engine, target, database.as_ref())
}

/// Drops the drill's scratch database, if it restored into one, and then its marker. A failed
/// drop is a failed `cleanup` check and keeps the marker, so the next drill drops it.
fn remove_scratch_database(
    place: Option<&Place>,
    server: Option<&Database>,
    marker: &std::path::Path,
    report: &mut Report,
) {
    if let (Some(Place::Database(name)), Some(server)) = (place, server)
        && let Err(e) = server.drop_database(name)
    {
        report.checks.push(CheckResult::new(
            "cleanup",
            format!("scratch database {name} dropped"),
            format!("{e} (the next drill of this target drops it)"),
            false,
        ));
        return;
    }
    let _ = std::fs::remove_file(marker);
}

/// Where a drill restored the snapshot.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A SQLite file.
    File(PathBuf),
    /// A directory holding a files target's tree.
    Dir(PathBuf),
    /// A scratch database on the target's (or the drill's) server.
    Database(String),
}

impl Place {
    fn describe(&self) -> String {
        match self {
            Self::File(p) | Self::Dir(p) => p.display().to_string(),
            Self::Database(d) => format!("database {d}"),
        }
    }
}

/// The snapshot to restore: the one asked for, else the configured choice.
fn choose(snapshots: &[Snapshot], req: &Request, settings: &Drill) -> Option<Snapshot> {
    if let Some(id) = &req.snapshot {
        let id = id.trim();
        if id == "latest" {
            return snapshots.last().cloned();
        }
        let found: Vec<_> = snapshots.iter().filter(|s| s.id.starts_with(id)).collect();
        return (found.len() == 1).then(|| found[0].clone());
    }
    match settings.snapshot {
        DrillSnapshot::Latest => snapshots.last().cloned(),
        DrillSnapshot::RandomWithin(window) => {
            let window =
                jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
            let oldest = req.now.checked_sub(window).unwrap_or(Timestamp::MIN);
            let candidates: Vec<_> = snapshots.iter().filter(|s| s.time >= oldest).collect();
            if candidates.is_empty() {
                return None;
            }
            let i = rand::random_range(0..candidates.len());
            Some(candidates[i].clone())
        }
    }
}

/// Restores `snapshot` into scratch. On failure, also says what may have been created.
fn restore(
    engine: &Engine,
    target: &Target,
    settings: &Drill,
    snapshot: &Snapshot,
    scratch: &ScratchDir,
    now: Timestamp,
) -> Result<Place, (Option<Place>, String)> {
    let name = &target.name;
    match &target.kind {
        TargetKind::Sqlite { path } => {
            let file = scratch.join(path.file_name().unwrap_or(path.as_os_str()));
            engine
                .restore(name, &snapshot.id, &file, false)
                .map(|_| Place::File(file))
                .map_err(|e| (None, e.to_string()))
        }
        TargetKind::Files { .. } => {
            let dir = scratch.join("tree");
            engine
                .restore(name, &snapshot.id, &dir, false)
                .map(|_| Place::Dir(dir))
                .map_err(|e| (None, e.to_string()))
        }
        TargetKind::Postgres(_) | TargetKind::Mariadb(_) => {
            let db = scratch_database(name, now);
            let opts = DbRestore {
                server: settings.server.clone(),
                analyze: false,
                ..DbRestore::default()
            };
            engine
                .restore_database(name, &snapshot.id, &db, &opts)
                .map(|_| Place::Database(db.clone()))
                .map_err(|e| (Some(Place::Database(db)), e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, secs: i64) -> Snapshot {
        Snapshot {
            id: id.into(),
            time: Timestamp::from_second(secs).expect("time"),
            target: "t".into(),
            kind: "sqlite".into(),
            reason: "test".into(),
            source_bytes: 0,
            added_bytes: 0,
            duration_seconds: 0.0,
            runbook_version: String::new(),
            paths: Vec::new(),
        }
    }

    fn drill(snapshot: DrillSnapshot) -> Drill {
        Drill {
            schedule: None,
            snapshot,
            max_restore: None,
            max_data_age: None,
            ready_command: None,
            ready_timeout: std::time::Duration::from_secs(60),
            server: None,
            checks: Vec::new(),
        }
    }

    fn req(snapshot: Option<&str>, now: i64) -> Request {
        Request {
            snapshot: snapshot.map(str::to_string),
            now: Timestamp::from_second(now).expect("time"),
            backup_first: false,
        }
    }

    #[test]
    fn the_snapshot_asked_for_wins_and_must_be_unambiguous() {
        let snaps = [snap("aa11", 100), snap("aa22", 200), snap("bb33", 300)];
        let latest = drill(DrillSnapshot::Latest);
        let id = |r: &Request| choose(&snaps, r, &latest).map(|s| s.id);
        assert_eq!(id(&req(None, 400)).as_deref(), Some("bb33"));
        assert_eq!(id(&req(Some("latest"), 400)).as_deref(), Some("bb33"));
        assert_eq!(id(&req(Some("aa2"), 400)).as_deref(), Some("aa22"));
        assert_eq!(id(&req(Some("aa"), 400)), None, "two match: ambiguous");
        assert_eq!(id(&req(Some("cc"), 400)), None);
        assert_eq!(choose(&[], &req(None, 400), &latest), None);
    }

    #[test]
    fn random_within_picks_only_snapshots_inside_the_window() {
        let snaps = [snap("old", 0), snap("mid", 9_000), snap("new", 9_500)];
        let within = drill(DrillSnapshot::RandomWithin(std::time::Duration::from_secs(
            1_500,
        )));
        for _ in 0..50 {
            let picked = choose(&snaps, &req(None, 10_000), &within).expect("one");
            assert!(picked.id == "mid" || picked.id == "new", "{}", picked.id);
        }
        assert_eq!(choose(&snaps[..1], &req(None, 10_000), &within), None);
    }

    #[test]
    fn scratch_database_names_are_recognised_exactly() {
        let prefix = "runbook_drill_shop_";
        assert!(is_scratch_database(
            prefix,
            "runbook_drill_shop_20261125093000"
        ));
        for other in [
            "runbook_drill_shop_2026112509300",
            "runbook_drill_shop_202611250930001",
            "runbook_drill_shop_2026112509300x",
            "runbook_drill_shopx_20261125093000",
            "shop",
        ] {
            assert!(!is_scratch_database(prefix, other), "{other}");
        }
    }
}
