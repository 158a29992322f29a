//! Several `runbook serve` instances on one state store: each instance's heartbeat, named
//! leases (the scheduler's leader), and the renewal of job leases.
//!
//! A lease is a row `(name, holder, until_ms)` taken with one upsert that only succeeds when
//! the row is free, expired, or already the caller's: the database decides, so two instances
//! never hold it at once, on SQLite or PostgreSQL.

use sqlx::Row;

use crate::{
    Job, Result, Store,
    jobs::{COLUMNS, job_from},
};

/// One instance as the store last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct InstanceRow {
    /// Its id (random per start).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// When it started (Unix ms).
    pub started_at: i64,
    /// Its last heartbeat (Unix ms).
    pub last_seen: i64,
}

impl Store {
    /// Records that instance `id` (on `host`, started at `started_at`) is alive at `now`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn instance_seen(
        &self,
        id: &str,
        host: &str,
        started_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (id, host, started_at, last_seen) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
        )
        .bind(id)
        .bind(host)
        .bind(started_at)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Instances seen since `since` (Unix ms), newest start first; older rows are removed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn instances(&self, since: i64) -> Result<Vec<InstanceRow>> {
        sqlx::query("DELETE FROM instances WHERE last_seen < $1")
            .bind(since)
            .execute(self.pool())
            .await?;
        let rows = sqlx::query(
            "SELECT id, host, started_at, last_seen FROM instances ORDER BY started_at DESC, id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InstanceRow {
                    id: r.try_get(0)?,
                    host: r.try_get(1)?,
                    started_at: r.try_get(2)?,
                    last_seen: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Takes or renews the lease `name` for `holder` until `until_ms`; true when `holder`
    /// holds it now. Fails (false) while another holder's lease runs at `now`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until_ms: i64,
    ) -> Result<bool> {
        sqlx::query(
            "INSERT INTO cluster_leases (name, holder, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
             WHERE cluster_leases.holder = excluded.holder OR cluster_leases.until_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until_ms)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(self.lease_holder(name, now).await?.as_deref() == Some(holder))
    }

    /// Who holds the lease `name` at `now`, if anyone.
    ///
    /// # Errors
    /// Database errors.
    pub async fn lease_holder(&self, name: &str, now: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT holder FROM cluster_leases WHERE name = $1 AND until_ms >= $2",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(self.pool())
        .await?)
    }

    /// As [`Store::claim_next`], leased to the instance `owner` until `lease_until_ms`: when the
    /// lease runs out without being renewed (its instance died), another instance re-queues
    /// the job ([`Store::requeue_expired`]). On PostgreSQL claims are serialized across
    /// instances (a transaction-scoped advisory lock), so two instances never claim the same
    /// job, nor two jobs of one target.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim_leased(
        &self,
        now_ms: i64,
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<Option<Job>> {
        self.claim(now_ms, Some((owner, lease_until_ms))).await
    }

    pub(crate) async fn claim(
        &self,
        now_ms: i64,
        lease: Option<(&str, i64)>,
    ) -> Result<Option<Job>> {
        let mut tx = self.pool().begin().await?;
        if self.engine() == crate::Engine::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7270001)")
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'running', started_at = $1, attempts = attempts + 1,
                lease_owner = $2, lease_until = $3
             WHERE state = 'queued' AND id = (
                SELECT j.id FROM jobs j WHERE j.state = 'queued'
                AND (j.run_after IS NULL OR j.run_after <= $1) AND NOT EXISTS (
                    SELECT 1 FROM jobs r WHERE r.state = 'running' AND r.target = j.target)
                ORDER BY j.created_at, CASE j.kind WHEN 'backup' THEN 0 ELSE 1 END, j.id LIMIT 1)
             RETURNING {COLUMNS}"
        )))
        .bind(now_ms)
        .bind(lease.map(|(o, _)| o.to_string()))
        .bind(lease.map(|(_, u)| u))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(job_from).transpose()
    }

    /// Gives up the lease `name` if `holder` has it (a clean stop hands over at once).
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM cluster_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// When the last job of `target` finished (any kind, any instance), in Unix ms.
    ///
    /// # Errors
    /// Database errors.
    pub async fn last_job_finished(&self, target: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT max(finished_at) FROM jobs WHERE target = $1")
                .bind(target)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Extends the leases of the jobs `owner` runs to `until_ms`; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn renew_job_leases(&self, owner: &str, until_ms: i64) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE lease_owner = $2 AND state = 'running'",
        )
        .bind(until_ms)
        .bind(owner)
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}
