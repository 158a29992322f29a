//! What a drill found: its outcome, each check with what was expected and what was seen, the
//! report, and its record in the state store and the ops log.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{seconds, short};

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
