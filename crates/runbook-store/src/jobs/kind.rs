//! What a job does and where it stands, stored as lowercase TEXT and parsed back at the edge.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for the worker.
    Queued,
    /// Being worked on.
    Running,
    /// Done.
    Succeeded,
    /// Done, with an error.
    Failed,
    /// The process died while it ran.
    Interrupted,
}

impl JobState {
    /// The name stored and shown (`queued`, `running`, …).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            other => {
                return Err(Error::Corrupt {
                    what: "jobs.state",
                    value: other.to_string(),
                });
            }
        })
    }
}

/// What a job does. Stored as its lowercase name (a TEXT column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Back up the target, then apply its retention rule.
    Backup,
    /// Restore a snapshot (to a path or into a database).
    Restore,
    /// A restore drill.
    Drill,
    /// Read back one slice of the target's packs (the rolling verification).
    Verify,
    /// A maintenance task (`[tasks.NAME]`); the job's target is the task's name.
    Task,
}

impl JobKind {
    /// The name stored and shown (`backup`, `restore`, `drill`, `verify`, `task`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Drill => "drill",
            Self::Verify => "verify",
            Self::Task => "task",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "backup" => Self::Backup,
            "restore" => Self::Restore,
            "drill" => Self::Drill,
            "verify" => Self::Verify,
            "task" => Self::Task,
            other => {
                return Err(Error::Corrupt {
                    what: "jobs.kind",
                    value: other.to_string(),
                });
            }
        })
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for JobKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
