//! What the monitor keeps of its probes: each probe's latest result and hourly rollups (daily
//! after a month).

use sqlx::Row;

use crate::{Result, Store};

const HOUR_MS: i64 = 3_600_000;

/// One probe check's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ProbeResult {
    /// The probe.
    pub probe: String,
    /// Whether it passed.
    pub ok: bool,
    /// When it was checked (Unix ms).
    pub at: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
}

/// A probe's latest result and since when it has been in that state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeStatus {
    /// The latest result.
    #[serde(flatten)]
    pub last: ProbeResult,
    /// Since when it has been passing (or failing).
    pub since: i64,
}

/// One hour of a probe's checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rollup {
    /// The hour's start (Unix ms).
    pub hour: i64,
    /// Checks run.
    pub checks: i64,
    /// Of which failed.
    pub failures: i64,
    /// Mean duration.
    pub mean_ms: i64,
    /// Longest duration.
    pub max_ms: i64,
}

impl Store {
    /// Stores a batch of probe results in one transaction: each probe's latest result, and
    /// its hourly rollup.
    ///
    /// # Errors
    /// Database errors.
    pub async fn record_probe_results(&self, results: &[ProbeResult]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for r in results {
            let ok = i64::from(r.ok);
            sqlx::query(
                "INSERT INTO probe_status (probe, ok, since, checked_at, duration_ms, error)
                 VALUES ($1, $2, $3, $3, $4, $5)
                 ON CONFLICT (probe) DO UPDATE SET
                   since = CASE WHEN probe_status.ok = excluded.ok THEN probe_status.since ELSE excluded.since END,
                   ok = excluded.ok, checked_at = excluded.checked_at,
                   duration_ms = excluded.duration_ms, error = excluded.error",
            )
            .bind(&r.probe)
            .bind(ok)
            .bind(r.at)
            .bind(r.duration_ms)
            .bind(&r.error)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO probe_rollups (probe, hour, checks, failures, total_ms, max_ms)
                 VALUES ($1, $2, 1, $3, $4, $4)
                 ON CONFLICT (probe, hour) DO UPDATE SET
                   checks = probe_rollups.checks + 1,
                   failures = probe_rollups.failures + excluded.failures,
                   total_ms = probe_rollups.total_ms + excluded.total_ms,
                   max_ms = CASE WHEN excluded.max_ms > probe_rollups.max_ms THEN excluded.max_ms ELSE probe_rollups.max_ms END",
            )
            .bind(&r.probe)
            .bind(r.at - r.at.rem_euclid(HOUR_MS))
            .bind(1 - ok)
            .bind(r.duration_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every probe's latest result.
    ///
    /// # Errors
    /// Database errors.
    pub async fn probe_statuses(&self) -> Result<Vec<ProbeStatus>> {
        sqlx::query(
            "SELECT probe, ok, since, checked_at, duration_ms, error FROM probe_status ORDER BY probe",
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| {
            Ok(ProbeStatus {
                last: ProbeResult {
                    probe: r.try_get(0)?,
                    ok: r.try_get::<i64, _>(1)? != 0,
                    at: r.try_get(3)?,
                    duration_ms: r.try_get(4)?,
                    error: r.try_get(5)?,
                },
                since: r.try_get(2)?,
            })
        })
        .collect()
    }

    /// A probe's hourly rollups from `since` on, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn probe_rollups(&self, probe: &str, since: i64) -> Result<Vec<Rollup>> {
        sqlx::query(
            "SELECT hour, checks, failures, total_ms, max_ms FROM probe_rollups
             WHERE probe = $1 AND hour >= $2 ORDER BY hour",
        )
        .bind(probe)
        .bind(since)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| {
            let checks: i64 = r.try_get(1)?;
            let total: i64 = r.try_get(3)?;
            Ok(Rollup {
                hour: r.try_get(0)?,
                checks,
                failures: r.try_get(2)?,
                mean_ms: total / checks.max(1),
                max_ms: r.try_get(4)?,
            })
        })
        .collect()
    }

    /// Folds hourly rollups older than `hourly_before` (a day boundary) into daily ones,
    /// drops daily ones older than `daily_before`, and forgets probes not in `keep`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn compact_probe_data(
        &self,
        hourly_before: i64,
        daily_before: i64,
        keep: &[String],
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO probe_daily (probe, day, checks, failures, total_ms, max_ms)
             SELECT probe, hour - (hour % 86400000), sum(checks), sum(failures), sum(total_ms), max(max_ms)
             FROM probe_rollups WHERE hour < $1 GROUP BY probe, hour - (hour % 86400000)
             ON CONFLICT (probe, day) DO UPDATE SET
               checks = probe_daily.checks + excluded.checks,
               failures = probe_daily.failures + excluded.failures,
               total_ms = probe_daily.total_ms + excluded.total_ms,
               max_ms = CASE WHEN excluded.max_ms > probe_daily.max_ms THEN excluded.max_ms ELSE probe_daily.max_ms END",
        )
        .bind(hourly_before)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM probe_rollups WHERE hour < $1")
            .bind(hourly_before)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM probe_daily WHERE day < $1")
            .bind(daily_before)
            .execute(&mut *tx)
            .await?;
        let known = sqlx::query(
            "SELECT probe FROM probe_status UNION SELECT probe FROM probe_rollups UNION SELECT probe FROM probe_daily",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in known {
            let probe: String = r.try_get(0)?;
            if keep.contains(&probe) {
                continue;
            }
            for q in [
                sqlx::query("DELETE FROM probe_status WHERE probe = $1"),
                sqlx::query("DELETE FROM probe_rollups WHERE probe = $1"),
                sqlx::query("DELETE FROM probe_daily WHERE probe = $1"),
            ] {
                q.bind(&probe).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
