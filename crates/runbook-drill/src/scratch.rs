//! Scratch space of drills: the scratch database names, the marker that names a scratch
//! database while a drill runs, and the removal of what killed drills left.

use std::path::PathBuf;

use jiff::Timestamp;
use runbook_backup::{Database, Engine, TargetLock};

use crate::{CheckResult, Place, Report};

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
pub(crate) fn scratch_database(target: &str, now: Timestamp) -> String {
    format!(
        "{}{}",
        database_prefix(target),
        now.strftime("%Y%m%d%H%M%S")
    )
}

/// A scratch database name belongs to `target` when it is its prefix plus the 14-digit time.
pub(crate) fn is_scratch_database(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 14 && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// Where drills of every target restore files and SQLite databases.
#[must_use]
pub fn scratch_root(engine: &Engine) -> PathBuf {
    engine.config().scratch_dir().join("drills")
}

pub(crate) fn marker_file(engine: &Engine, target: &str) -> PathBuf {
    engine
        .config()
        .data_dir
        .join("locks")
        .join(format!("{target}.drill-database"))
}

/// Removes what killed drills of `target` left: scratch directories of dead processes, and
/// the scratch database named in the marker file. The caller holds the drill lock.
pub(crate) fn remove_dead_scratch(
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
    let server = t.drill.as_ref().and_then(|d| d.server.as_ref());
    let database = engine
        .database_of(target, server)
        .map_err(|e| e.to_string())?;
    remove_dead_scratch(engine, target, database.as_ref())
}

/// Drops the drill's scratch database, if it restored into one, and then its marker. A failed
/// drop is a failed `cleanup` check and keeps the marker, so the next drill drops it.
pub(crate) fn remove_scratch_database(
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
