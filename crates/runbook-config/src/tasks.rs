//! `[tasks.NAME]`: maintenance that runs on a schedule beside the backups: the built-in
//! `sqlite-optimize` (after a backup: `ANALYZE`, `PRAGMA optimize`, and `VACUUM` only when free
//! pages exceed a share of the file) and `command` tasks with a timeout.

use std::time::Duration;

use crate::Schedule;

/// One maintenance task.
#[derive(Debug, Clone)]
pub struct Task {
    /// Its name in `[tasks.NAME]`.
    pub name: String,
    /// What it does.
    pub kind: TaskKind,
    /// When `serve` runs it (`None`: only `runbook task run NAME`).
    pub schedule: Option<Schedule>,
    /// How long it may run before it is stopped and counted as failed.
    pub timeout: Duration,
}

/// What a task does.
#[derive(Debug, Clone)]
pub enum TaskKind {
    /// Back up the sqlite target, then `ANALYZE`, `PRAGMA optimize`, and `VACUUM` when the
    /// free pages are more than `vacuum_free_percent` of the file.
    SqliteOptimize {
        /// The sqlite target.
        target: String,
        /// Free-page share (percent) above which the file is vacuumed.
        vacuum_free_percent: u8,
    },
    /// A program and its arguments (no shell), run in the config's directory.
    Command {
        /// Program first.
        argv: Vec<String>,
    },
}

impl TaskKind {
    /// `sqlite-optimize` or `command`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::SqliteOptimize { .. } => "sqlite-optimize",
            Self::Command { .. } => "command",
        }
    }
}
