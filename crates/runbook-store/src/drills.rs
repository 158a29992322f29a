//! Restore drills as recorded: one row per drill, with the full report as JSON.

use serde::Serialize;
use sqlx::{Row, any::AnyRow};

use crate::{Result, Store, random_id};

/// A drill to record.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct NewDrill {
    /// The target drilled.
    pub target: String,
    /// The snapshot restored, if one was found.
    pub snapshot_id: Option<String>,
    /// Its time (Unix ms).
    pub snapshot_time: Option<i64>,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms.
    pub finished_at: i64,
    /// How long the restore took (the measured RTO), ms.
    pub restore_ms: Option<i64>,
    /// Age of the restored data at drill time (the measured RPO), ms.
    pub data_age_ms: Option<i64>,
    /// `passed`, `failed` or `error`.
    pub outcome: String,
    /// Names of the checks that failed.
    pub failed_checks: Vec<String>,
    /// The whole report.
    pub report: serde_json::Value,
    /// Who asked (`cli`, `schedule`, `key:<id>:<name>`).
    pub requested_by: String,
}

/// A drill as stored: its id and what was recorded (serialized flat).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DrillRecord {
    /// Drill id.
    pub id: String,
    /// What was recorded.
    #[serde(flatten)]
    pub drill: NewDrill,
}

const COLUMNS: &str = "id, target, snapshot_id, snapshot_time, started_at, finished_at, restore_ms, data_age_ms, outcome, failed_checks, report, requested_by";

fn drill_from(row: &AnyRow) -> Result<DrillRecord> {
    let failed: String = row.try_get("failed_checks")?;
    let report: String = row.try_get("report")?;
    Ok(DrillRecord {
        id: row.try_get("id")?,
        drill: NewDrill {
            target: row.try_get("target")?,
            snapshot_id: row.try_get("snapshot_id")?,
            snapshot_time: row.try_get("snapshot_time")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            restore_ms: row.try_get("restore_ms")?,
            data_age_ms: row.try_get("data_age_ms")?,
            outcome: row.try_get("outcome")?,
            failed_checks: serde_json::from_str(&failed).unwrap_or_default(),
            report: serde_json::from_str(&report).unwrap_or(serde_json::Value::Null),
            requested_by: row.try_get("requested_by")?,
        },
    })
}

impl Store {
    /// Records a finished drill.
    ///
    /// # Errors
    /// Database errors.
    pub async fn record_drill(&self, d: NewDrill) -> Result<DrillRecord> {
        let id = random_id();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO drills ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )))
        .bind(&id)
        .bind(&d.target)
        .bind(&d.snapshot_id)
        .bind(d.snapshot_time)
        .bind(d.started_at)
        .bind(d.finished_at)
        .bind(d.restore_ms)
        .bind(d.data_age_ms)
        .bind(&d.outcome)
        .bind(serde_json::to_string(&d.failed_checks).unwrap_or_default())
        .bind(d.report.to_string())
        .bind(&d.requested_by)
        .execute(self.pool())
        .await?;
        Ok(DrillRecord { id, drill: d })
    }

    /// Drills started at or after `since_ms`, optionally of one target, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn drills(
        &self,
        target: Option<&str>,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<DrillRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM drills WHERE ($1 = '' OR target = $2) AND started_at >= $3
             ORDER BY started_at DESC, finished_at DESC, id LIMIT $4"
        )))
        .bind(target.unwrap_or(""))
        .bind(target.unwrap_or(""))
        .bind(since_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(drill_from).collect()
    }

    /// The newest drill of `target`, optionally only with `outcome`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn last_drill(
        &self,
        target: &str,
        outcome: Option<&str>,
    ) -> Result<Option<DrillRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM drills WHERE target = $1 AND ($2 = '' OR outcome = $3)
             ORDER BY finished_at DESC, started_at DESC, id LIMIT 1"
        )))
        .bind(target)
        .bind(outcome.unwrap_or(""))
        .bind(outcome.unwrap_or(""))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(drill_from).transpose()
    }

    /// How many drills of `target` did not pass.
    ///
    /// # Errors
    /// Database errors.
    pub async fn drill_failures(&self, target: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM drills WHERE target = $1 AND outcome <> 'passed'",
        )
        .bind(target)
        .fetch_one(self.pool())
        .await?)
    }
}
