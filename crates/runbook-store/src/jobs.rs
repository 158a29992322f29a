//! The job queue: backups and restores requested by the API, the CLI or the scheduler.
//!
//! A job is claimed atomically (one `UPDATE … RETURNING`), never while another job of the same
//! target runs. Jobs found `running` at start belonged to a process that died: they are marked
//! `interrupted` and retried once.

use serde::Serialize;
use sqlx::{Row, any::AnyRow};

use crate::{Error, Result, Store, random_id};

mod kind;

pub use kind::{JobKind, JobState};

/// A job as stored.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// What the job does.
    pub kind: JobKind,
    /// The target.
    pub target: String,
    /// Kind-specific parameters.
    pub params: serde_json::Value,
    /// Current state.
    pub state: JobState,
    /// Error message when failed or interrupted.
    pub error: Option<String>,
    /// Kind-specific result (the snapshot, the restore report).
    pub result: Option<serde_json::Value>,
    /// How many times it has been started.
    pub attempts: i64,
    /// Who asked for it (`cli`, `schedule`, `key:<id>:<name>`).
    pub requested_by: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub started_at: Option<i64>,
    /// Unix ms.
    pub finished_at: Option<i64>,
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What the job does.
    pub kind: JobKind,
    /// The target.
    pub target: String,
    /// Parameters.
    pub params: serde_json::Value,
    /// Who asked.
    pub requested_by: String,
}

const INTERRUPTED: &str = "interrupted: the runbook process stopped while this job ran";

pub(crate) const COLUMNS: &str = "id, kind, target, params, state, error, result, attempts, requested_by, created_at, started_at, finished_at";

pub(crate) fn job_from(row: &AnyRow) -> Result<Job> {
    let json = |s: Option<String>| -> Option<serde_json::Value> {
        s.and_then(|s| serde_json::from_str(&s).ok())
    };
    Ok(Job {
        id: row.try_get("id")?,
        kind: JobKind::parse(&row.try_get::<String, _>("kind")?)?,
        target: row.try_get("target")?,
        params: json(row.try_get("params")?).unwrap_or(serde_json::Value::Null),
        state: JobState::parse(&row.try_get::<String, _>("state")?)?,
        error: row.try_get("error")?,
        result: json(row.try_get("result")?),
        attempts: row.try_get("attempts")?,
        requested_by: row.try_get("requested_by")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl Store {
    /// Adds a queued job.
    ///
    /// # Errors
    /// Database errors.
    pub async fn enqueue(&self, new: NewJob, now_ms: i64) -> Result<Job> {
        let id = random_id();
        insert_job(&id, &new, now_ms).execute(self.pool()).await?;
        self.job(&id).await
    }

    /// Queues a job and appends `action` by `actor` (outcome `accepted`, detail
    /// `{"job": id}`) to the ops log in one transaction: either both are stored or neither.
    ///
    /// # Errors
    /// Database errors; then no job was queued.
    pub async fn enqueue_audited(
        &self,
        new: NewJob,
        actor: &str,
        action: &str,
        now_ms: i64,
    ) -> Result<Job> {
        let id = random_id();
        let mut tx = self.begin_oplog_write().await?;
        insert_job(&id, &new, now_ms).execute(&mut *tx).await?;
        let entry = crate::NewEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            target: new.target.clone(),
            outcome: "accepted".into(),
            detail: serde_json::json!({ "job": id }).to_string(),
        };
        let entry = crate::oplog::append_in(&mut tx, entry, now_ms).await?;
        tx.commit().await?;
        self.advance_anchor(&entry);
        self.job(&id).await
    }

    /// The job `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`] or database errors.
    pub async fn job(&self, id: &str) -> Result<Job> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "job",
            id: id.to_string(),
        })?;
        job_from(&row)
    }

    /// The newest `limit` jobs, optionally of one target.
    ///
    /// # Errors
    /// Database errors.
    pub async fn jobs(&self, target: Option<&str>, limit: i64) -> Result<Vec<Job>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE ($1 = '' OR target = $2) ORDER BY created_at DESC, id LIMIT $3"
        )))
        .bind(target.unwrap_or(""))
        .bind(target.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(job_from).collect()
    }

    /// Claims the oldest queued job whose target has no running job, marking it running.
    ///
    /// # Errors
    /// Database errors.
    /// Jobs queued at the same moment run backups first, so a drill due in the same minute as
    /// a backup drills the new snapshot instead of failing on "no snapshot".
    pub async fn claim_next(&self, now_ms: i64) -> Result<Option<Job>> {
        self.claim(now_ms, None).await
    }

    /// Puts a running job that failed for a reason that may pass back in the queue, to be
    /// tried again no earlier than `run_after_ms`; `error` says why it waits.
    ///
    /// # Errors
    /// Database errors.
    pub async fn retry_later(&self, id: &str, error: &str, run_after_ms: i64) -> Result<Job> {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', error = $1, run_after = $2 WHERE id = $3 AND state = 'running'",
        )
        .bind(error)
        .bind(run_after_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        self.job(id).await
    }

    /// Records how a running job ended.
    ///
    /// # Errors
    /// Database errors.
    pub async fn finish(
        &self,
        id: &str,
        state: JobState,
        error: Option<&str>,
        result: Option<&serde_json::Value>,
        now_ms: i64,
    ) -> Result<Job> {
        sqlx::query(
            "UPDATE jobs SET state = $1, error = $2, result = $3, finished_at = $4 WHERE id = $5",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(result.map(ToString::to_string))
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        self.job(id).await
    }

    /// At start, and from time to time on every instance: every job still `running` without a
    /// lease that holds at `now_ms` belonged to a process that died. Marks them `interrupted`
    /// and re-queues each once (a job interrupted twice stays interrupted). Returns the
    /// re-queued jobs.
    ///
    /// # Errors
    /// Database errors.
    pub async fn recover_interrupted(&self, now_ms: i64) -> Result<Vec<Job>> {
        // A job whose lease still holds runs on another live instance: not ours to recover.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE state = 'running'
             AND (lease_until IS NULL OR lease_until < $1)"
        )))
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        let mut retried = Vec::new();
        for row in &rows {
            let job = job_from(row)?;
            if job.attempts < 2 {
                // Straight back to queued (never seen as finished), noting why.
                sqlx::query("UPDATE jobs SET state = 'queued', error = $1 WHERE id = $2 AND state = 'running'")
                    .bind(INTERRUPTED)
                    .bind(&job.id)
                    .execute(self.pool())
                    .await?;
                retried.push(self.job(&job.id).await?);
            } else {
                self.finish(
                    &job.id,
                    JobState::Interrupted,
                    Some(INTERRUPTED),
                    None,
                    now_ms,
                )
                .await?;
            }
        }
        Ok(retried)
    }

    /// Whether `target` has a queued or running job of `kind`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn has_active(&self, target: &str, kind: JobKind) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE target = $1 AND kind = $2 AND state IN ('queued', 'running')",
        )
        .bind(target)
        .bind(kind.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// The last succeeded and the last failed job of `kind` on `target`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn last_outcomes(
        &self,
        target: &str,
        kind: JobKind,
    ) -> Result<(Option<Job>, Option<Job>)> {
        Ok((
            self.last_finished(target, kind, JobState::Succeeded)
                .await?,
            self.last_finished(target, kind, JobState::Failed).await?,
        ))
    }

    /// The last finished job of `kind` on `target` in `state`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn last_finished(
        &self,
        target: &str,
        kind: JobKind,
        state: JobState,
    ) -> Result<Option<Job>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE target = $1 AND kind = $2 AND state = $3
             ORDER BY finished_at DESC LIMIT 1"
        )))
        .bind(target)
        .bind(kind.as_str())
        .bind(state.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_from).transpose()
    }

    /// When the scheduler last enqueued `target` (Unix ms).
    ///
    /// # Errors
    /// Database errors.
    pub async fn last_scheduled(&self, target: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT last_run FROM schedule_state WHERE target = $1")
                .bind(target)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Records that the scheduler enqueued `target` for the slot at `at_ms`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_last_scheduled(&self, target: &str, at_ms: i64) -> Result<()> {
        let updated = sqlx::query("UPDATE schedule_state SET last_run = $1 WHERE target = $2")
            .bind(at_ms)
            .bind(target)
            .execute(self.pool())
            .await?;
        if updated.rows_affected() == 0 {
            sqlx::query("INSERT INTO schedule_state (target, last_run) VALUES ($1, $2)")
                .bind(target)
                .bind(at_ms)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}

fn insert_job<'q>(
    id: &'q str,
    new: &'q NewJob,
    now_ms: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, target, params, state, attempts, requested_by, created_at)
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6)",
    )
    .bind(id)
    .bind(new.kind.as_str())
    .bind(&new.target)
    .bind(new.params.to_string())
    .bind(&new.requested_by)
    .bind(now_ms)
}
