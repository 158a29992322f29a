//! Heartbeats: their ping keys and recent runs, written from buffered pings.

use sqlx::Row;

use crate::{Result, Store, random_id};

/// Runs kept per heartbeat.
const RUNS_KEPT: i64 = 100;
const RUNS_KEPT_USIZE: usize = 100;

/// A heartbeat's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRow {
    /// Its name.
    pub name: String,
    /// The secret part of its ping URL.
    pub ping_key: String,
    /// When it was first known (Unix ms).
    pub created_at: i64,
    /// A `/start` not yet followed by a finish.
    pub started_at: Option<i64>,
    /// The last successful finish.
    pub last_ok: Option<i64>,
    /// The last failed finish.
    pub last_fail: Option<i64>,
}

/// One finished run of a heartbeat's job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HeartbeatRun {
    /// When it finished (Unix ms).
    pub at: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// From its `/start`, when there was one.
    pub duration_ms: Option<i64>,
    /// The exit code it reported (`/ping/KEY/CODE`).
    pub exit_code: Option<i64>,
    /// Why it counts as failed, or the body it sent.
    pub note: Option<String>,
}

/// One heartbeat ping, as buffered before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatEvent {
    /// `/ping/KEY/start`.
    Start {
        /// The heartbeat.
        name: String,
        /// When (Unix ms).
        at: i64,
    },
    /// A finish: `/ping/KEY` (ok), `/fail`, `/EXIT_CODE`. A success shorter than
    /// `min_runtime_ms` from its `/start` counts as a failure.
    Finish {
        /// The heartbeat.
        name: String,
        /// When (Unix ms).
        at: i64,
        /// As reported.
        ok: bool,
        /// `/ping/KEY/CODE`.
        exit_code: Option<i64>,
        /// The body sent (first 1,000 bytes).
        note: Option<String>,
        /// The heartbeat's `min_runtime`.
        min_runtime_ms: Option<i64>,
    },
}

/// A finish as a run: a success shorter than `min_runtime_ms` from its start is a failure.
fn judge(
    started: Option<i64>,
    now: i64,
    ok: bool,
    exit_code: Option<i64>,
    note: Option<String>,
    min_runtime_ms: Option<i64>,
) -> HeartbeatRun {
    let duration_ms = started.map(|s| now - s);
    let too_fast = ok && matches!((duration_ms, min_runtime_ms), (Some(d), Some(min)) if d < min);
    HeartbeatRun {
        at: now,
        ok: ok && !too_fast,
        duration_ms,
        exit_code,
        note: if too_fast {
            Some(format!(
                "finished in {} ms, less than min_runtime {} ms",
                duration_ms.unwrap_or(0),
                min_runtime_ms.unwrap_or(0)
            ))
        } else {
            note
        },
    }
}

async fn insert_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    run: &HeartbeatRun,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO heartbeat_runs (name, at, ok, duration_ms, exit_code, note) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name)
    .bind(run.at)
    .bind(i64::from(run.ok))
    .bind(run.duration_ms)
    .bind(run.exit_code)
    .bind(&run.note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl HeartbeatEvent {
    fn name(&self) -> &str {
        match self {
            Self::Start { name, .. } | Self::Finish { name, .. } => name,
        }
    }
}

impl Store {
    /// The heartbeat `name`, created with a new random ping key the first time.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat(&self, name: &str, now: i64) -> Result<HeartbeatRow> {
        sqlx::query(
            "INSERT INTO heartbeats (name, ping_key, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(random_id())
        .bind(now)
        .execute(self.pool())
        .await?;
        let r = sqlx::query(
            "SELECT name, ping_key, created_at, started_at, last_ok, last_fail FROM heartbeats WHERE name = $1",
        )
        .bind(name)
        .fetch_one(self.pool())
        .await?;
        Ok(HeartbeatRow {
            name: r.try_get(0)?,
            ping_key: r.try_get(1)?,
            created_at: r.try_get(2)?,
            started_at: r.try_get(3)?,
            last_ok: r.try_get(4)?,
            last_fail: r.try_get(5)?,
        })
    }

    /// Applies heartbeat pings in order, in one transaction (pings are buffered and written
    /// together). Returns the runs each finish recorded.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat_apply(&self, events: &[HeartbeatEvent]) -> Result<Vec<HeartbeatRun>> {
        // Per heartbeat, in order: one read, the runs worked out here, one update and the
        // newest runs inserted (only the last RUNS_KEPT are kept anyway), so a burst of pings
        // costs a few statements, not three per ping.
        let mut names: Vec<&str> = Vec::new();
        for e in events {
            let name = e.name();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let mut tx = self.pool().begin().await?;
        let mut all = Vec::new();
        for name in names {
            let row = sqlx::query(
                "SELECT started_at, last_ok, last_fail FROM heartbeats WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let mut started: Option<i64> = row.try_get(0)?;
            let mut last_ok: Option<i64> = row.try_get(1)?;
            let mut last_fail: Option<i64> = row.try_get(2)?;
            let mut runs = Vec::new();
            for e in events.iter().filter(|e| e.name() == name) {
                match e {
                    HeartbeatEvent::Start { at, .. } => started = Some(*at),
                    HeartbeatEvent::Finish {
                        at,
                        ok,
                        exit_code,
                        note,
                        min_runtime_ms,
                        ..
                    } => {
                        let run =
                            judge(started, *at, *ok, *exit_code, note.clone(), *min_runtime_ms);
                        if run.ok {
                            last_ok = Some(*at);
                        } else {
                            last_fail = Some(*at);
                        }
                        started = None;
                        runs.push(run);
                    }
                }
            }
            sqlx::query("UPDATE heartbeats SET started_at = $1, last_ok = $2, last_fail = $3 WHERE name = $4")
                .bind(started)
                .bind(last_ok)
                .bind(last_fail)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            let skip = runs
                .len()
                .saturating_sub(usize::try_from(RUNS_KEPT).unwrap_or(usize::MAX));
            for run in &runs[skip..] {
                insert_run(&mut tx, name, run).await?;
            }
            if let Some(oldest_kept) = runs.get(skip).filter(|_| runs.len() >= RUNS_KEPT_USIZE) {
                // A burst replaced every kept run: drop the older ones now, not at housekeeping.
                sqlx::query("DELETE FROM heartbeat_runs WHERE name = $1 AND at < $2")
                    .bind(name)
                    .bind(oldest_kept.at)
                    .execute(&mut *tx)
                    .await?;
            }
            all.extend(runs);
        }
        tx.commit().await?;
        Ok(all)
    }

    /// Records a finished run of `name`'s job (see [`HeartbeatEvent::Finish`]).
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat_finish(
        &self,
        name: &str,
        now: i64,
        ok: bool,
        exit_code: Option<i64>,
        note: Option<String>,
        min_runtime_ms: Option<i64>,
    ) -> Result<Option<HeartbeatRun>> {
        let event = HeartbeatEvent::Finish {
            name: name.to_string(),
            at: now,
            ok,
            exit_code,
            note,
            min_runtime_ms,
        };
        Ok(self.heartbeat_apply(&[event]).await?.pop())
    }

    /// Records a started run that did not finish within its `max_runtime` as a failed run
    /// (once: the start is cleared).
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat_overran(&self, name: &str, now: i64, max_ms: i64) -> Result<()> {
        self.heartbeat_finish(
            name,
            now,
            false,
            None,
            Some(format!("started but did not finish within {max_ms} ms")),
            None,
        )
        .await
        .map(drop)
    }

    /// The newest `limit` runs of `name`, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat_runs(&self, name: &str, limit: i64) -> Result<Vec<HeartbeatRun>> {
        sqlx::query(
            "SELECT at, ok, duration_ms, exit_code, note FROM heartbeat_runs
             WHERE name = $1 ORDER BY at DESC LIMIT $2",
        )
        .bind(name)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| {
            Ok(HeartbeatRun {
                at: r.try_get(0)?,
                ok: r.try_get::<i64, _>(1)? != 0,
                duration_ms: r.try_get(2)?,
                exit_code: r.try_get(3)?,
                note: r.try_get(4)?,
            })
        })
        .collect()
    }

    /// Keeps the newest runs of each heartbeat and drops the rest.
    ///
    /// # Errors
    /// Database errors.
    pub async fn expire_heartbeat_runs(&self, name: &str) -> Result<()> {
        let cutoff: Option<i64> = sqlx::query_scalar(
            "SELECT at FROM heartbeat_runs WHERE name = $1 ORDER BY at DESC LIMIT 1 OFFSET $2",
        )
        .bind(name)
        .bind(RUNS_KEPT)
        .fetch_optional(self.pool())
        .await?;
        if let Some(cutoff) = cutoff {
            sqlx::query("DELETE FROM heartbeat_runs WHERE name = $1 AND at <= $2")
                .bind(name)
                .bind(cutoff)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}
