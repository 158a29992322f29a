//! Restore drills: prove a target's backups restore by doing it.
//!
//! A drill picks a snapshot, restores it into scratch (a file or directory in
//! `data_dir/scratch/drills`, or a database `runbook_drill_<target>_<time>`), runs the built-in
//! checks for the target's kind and the configured ones, measures the restore time (RTO) and
//! the data's age (RPO), and always removes the scratch. A drill killed mid-way leaves scratch
//! behind; the next drill of the target removes it first (it holds the target's drill lock, so
//! what it finds is provably dead) and reports it.

mod checks;
mod kinds;
mod outcome;
mod ready;
mod report;
mod restore;
mod scratch;

use std::time::Instant;

use jiff::Timestamp;
use runbook_backup::{Engine, ScratchDir, TargetLock};

pub use outcome::{CheckResult, Outcome, Report, SnapshotRef, record};
pub use report::{markdown, parse_since};
pub use scratch::{clean_leftovers, database_prefix, scratch_root};

use restore::{Place, choose};
use scratch::{marker_file, remove_dead_scratch, remove_scratch_database, scratch_database};

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
    let database = engine
        .database_of(name, settings.server.as_ref())
        .map_err(|e| e.to_string())?;
    report.leftovers_removed = remove_dead_scratch(engine, name, database.as_ref())?;
    if req.backup_first {
        progress("backing up (reason restore-drill)");
        let fresh = engine.backup(
            name,
            &runbook_backup::BackupRequest {
                reason: "restore-drill".into(),
                time: None,
                keep_forever: false,
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
    let kind = kinds::of(&target.kind);
    let cx = kinds::DrillCx {
        engine,
        target: &target,
        settings: &settings,
        snapshot: &snapshot,
        database: database.as_ref(),
    };
    let restored = kind.restore(&cx, &scratch, req.now);
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
    kind.check(&cx, &place, &mut report.checks);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::is_scratch_database;
    use runbook_backup::Snapshot;
    use runbook_config::{Drill, DrillSnapshot};

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
            keep_forever: false,
            phases: std::collections::BTreeMap::new(),
            stages: std::collections::BTreeMap::new(),
        }
    }

    fn drill(snapshot: DrillSnapshot) -> Drill {
        Drill {
            snapshot,
            ready_timeout: std::time::Duration::from_secs(60),
            ..Drill::default()
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
