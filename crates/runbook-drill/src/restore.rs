//! Choosing the snapshot to drill and restoring it into scratch.

use std::path::PathBuf;

use jiff::Timestamp;
use runbook_backup::{DbRestore, Engine, ScratchDir, Snapshot};
use runbook_config::{Drill, DrillSnapshot, Target, TargetKind};

use crate::{Request, scratch::scratch_database};

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
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::File(p) | Self::Dir(p) => p.display().to_string(),
            Self::Database(d) => format!("database {d}"),
        }
    }
}

/// The snapshot to restore: the one asked for, else the configured choice.
pub(crate) fn choose(snapshots: &[Snapshot], req: &Request, settings: &Drill) -> Option<Snapshot> {
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
pub(crate) fn restore(
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
