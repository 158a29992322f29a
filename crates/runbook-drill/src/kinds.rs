//! What a drill does per target kind: where the snapshot is restored and which built-in checks
//! run on the copy.
//!
//! Adding a kind: implement [`DrillKind`] in the kind's file under `checks/` and add one line
//! to [`of`]; the engine side is one file in `runbook-backup`'s `kinds/`.

use jiff::Timestamp;
use runbook_backup::{Database, DbRestore, Engine, ScratchDir, Snapshot};
use runbook_config::{Drill, Target, TargetKind};

use crate::{CheckResult, Place, checks, scratch::scratch_database};

/// The implementation of `kind`: the registration table, one line per kind.
pub(crate) fn of(kind: &TargetKind) -> Box<dyn DrillKind + '_> {
    match kind {
        TargetKind::Sqlite { path } => Box::new(checks::sqlite::Drill { path }),
        TargetKind::Postgres(pg) => Box::new(checks::postgres::Drill { pg }),
        TargetKind::Mariadb(_) => Box::new(checks::mariadb::Drill),
        TargetKind::Files { .. } => Box::new(checks::files::Drill),
        TargetKind::Bucket(_) => Box::new(checks::bucket::Drill),
    }
}

/// A drill in progress.
pub(crate) struct DrillCx<'a> {
    pub engine: &'a Engine,
    pub target: &'a Target,
    pub settings: &'a Drill,
    pub snapshot: &'a Snapshot,
    /// The drill server (database kinds).
    pub database: Option<&'a Database>,
}

/// A restore failure, with the place it may have left behind.
pub(crate) type RestoreFailure = (Option<Place>, String);

/// One kind of target, as a drill sees it.
pub(crate) trait DrillKind {
    /// Restores the snapshot into scratch.
    fn restore(
        &self,
        cx: &DrillCx<'_>,
        scratch: &ScratchDir,
        now: Timestamp,
    ) -> Result<Place, RestoreFailure>;

    /// The built-in checks of the restored copy at `place` (the configured `sql` and
    /// `row_counts` checks run inside the shared database procedure).
    fn check(&self, cx: &DrillCx<'_>, place: &Place, out: &mut Vec<CheckResult>);
}

/// Restores to `path` in scratch (file kinds), `wrap` saying what kind of place it is.
pub(crate) fn restore_path(
    cx: &DrillCx<'_>,
    path: std::path::PathBuf,
    wrap: fn(std::path::PathBuf) -> Place,
) -> Result<Place, RestoreFailure> {
    cx.engine
        .restore(&cx.target.name, &cx.snapshot.id, &path, false)
        .map(|_| wrap(path))
        .map_err(|e| (None, e.to_string()))
}

/// Restores into a new scratch database on the drill server (database kinds).
pub(crate) fn restore_database(cx: &DrillCx<'_>, now: Timestamp) -> Result<Place, RestoreFailure> {
    let db = scratch_database(&cx.target.name, now);
    let opts = DbRestore {
        server: cx.settings.server.clone(),
        analyze: false,
        ..DbRestore::default()
    };
    cx.engine
        .restore_database(&cx.target.name, &cx.snapshot.id, &db, &opts)
        .map(|_| Place::Database(db.clone()))
        .map_err(|e| (Some(Place::Database(db)), e.to_string()))
}

/// The check recorded when a kind is handed a place of another kind (a defect, not a failed
/// restore).
pub(crate) fn wrong_place(out: &mut Vec<CheckResult>) {
    out.push(CheckResult::new(
        "restore",
        "a restored copy of the target's kind",
        "internal error: restored to the wrong kind of place",
        false,
    ));
}
