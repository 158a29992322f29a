//! `sqlite-optimize`: keep a SQLite database's statistics fresh and its file compact, with a
//! backup first. Everything runs under the target's lock, so no backup or restore of runbook's
//! overlaps it; the application may keep writing (SQLite's busy timeout queues each step).

use std::{path::Path, time::Instant};

use rusqlite::Connection;

use crate::{BackupRequest, Engine, Error, Result, Snapshot};

/// What `sqlite-optimize` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OptimizeReport {
    /// The backup taken first (reason `pre-optimize`).
    pub backup: Snapshot,
    /// Pages in the file before.
    pub pages: i64,
    /// Free pages before.
    pub free_pages: i64,
    /// Whether `VACUUM` ran (free pages above the threshold).
    pub vacuumed: bool,
    /// File size before and after, bytes.
    pub bytes_before: u64,
    /// File size after, bytes.
    pub bytes_after: u64,
    /// Seconds, backup included.
    pub seconds: f64,
}

impl Engine {
    /// Backs up the sqlite target `target`, then runs `ANALYZE` and `PRAGMA optimize`, and
    /// `VACUUM` when free pages exceed `vacuum_free_percent` of the file.
    ///
    /// # Errors
    /// Not a sqlite target, busy, the backup failed (nothing else ran), or a step failed (the
    /// database stays as SQLite left it: each step is its own transaction).
    pub fn sqlite_optimize(&self, target: &str, vacuum_free_percent: u8) -> Result<OptimizeReport> {
        let started = Instant::now();
        let t = self.config.target(target)?;
        let Some(path) = t.kind.live_file() else {
            return Err(Error::Usage {
                target: target.to_string(),
                message: "sqlite-optimize needs a sqlite target".into(),
            });
        };
        let mut lock = self.lock(t)?;
        let req = BackupRequest {
            reason: "pre-optimize".into(),
            time: None,
            keep_forever: false,
        };
        let backup = self.backup_locked(t, &req, &mut lock, started)?;
        let fail = |step: &str, e: rusqlite::Error| Error::Source {
            target: target.to_string(),
            path: path.to_path_buf(),
            reason: format!("{step}: {e}"),
        };
        let bytes_before = size(path);
        let conn = Connection::open(path).map_err(|e| fail("open", e))?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(|e| fail("busy_timeout", e))?;
        conn.execute_batch("ANALYZE; PRAGMA optimize;")
            .map_err(|e| fail("ANALYZE", e))?;
        let pragma = |name: &str| -> Result<i64> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(|e| fail(name, e))
        };
        let (pages, free_pages) = (pragma("page_count")?, pragma("freelist_count")?);
        let vacuumed = pages > 0 && free_pages * 100 > pages * i64::from(vacuum_free_percent);
        if vacuumed {
            conn.execute_batch("VACUUM")
                .map_err(|e| fail("VACUUM", e))?;
            // In WAL mode the compacted pages are in the log: a checkpoint moves them into the
            // file and truncates it (it waits its turn with the application's writers).
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(|e| fail("wal_checkpoint", e))?;
        }
        drop(conn);
        Ok(OptimizeReport {
            backup,
            pages,
            free_pages,
            vacuumed,
            bytes_before,
            bytes_after: size(path),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
