//! Choosing the snapshot to drill and restoring it into scratch.

use std::path::PathBuf;

use jiff::Timestamp;
use runbook_backup::Snapshot;
use runbook_config::{Drill, DrillSnapshot};

use crate::Request;

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
