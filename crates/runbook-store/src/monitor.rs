//! What the monitor keeps: each probe's latest result and hourly rollups, heartbeats with
//! their ping keys and recent runs, silences made through the API, and the inbound event ids
//! seen lately (replay protection).

use sqlx::Row;

use crate::{Result, Store, random_id};

const HOUR_MS: i64 = 3_600_000;
/// Runs kept per heartbeat.
const RUNS_KEPT: i64 = 100;
const RUNS_KEPT_USIZE: usize = 100;

/// One probe check's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// A silence made through the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SilenceRow {
    /// Its id.
    pub id: String,
    /// Only this rule (`None`: all).
    pub rule: Option<String>,
    /// From (Unix ms).
    pub starts_at: i64,
    /// Until (Unix ms).
    pub ends_at: i64,
    /// Why.
    pub comment: String,
    /// The API key that made it.
    pub created_by: String,
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

    /// Adds a silence.
    ///
    /// # Errors
    /// Database errors.
    pub async fn add_silence(
        &self,
        rule: Option<&str>,
        starts_at: i64,
        ends_at: i64,
        comment: &str,
        created_by: &str,
        now: i64,
    ) -> Result<SilenceRow> {
        let id = format!("sil_{}", &random_id()[..12]);
        sqlx::query(
            "INSERT INTO silences (id, rule, starts_at, ends_at, comment, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(rule)
        .bind(starts_at)
        .bind(ends_at)
        .bind(comment)
        .bind(created_by)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(SilenceRow {
            id,
            rule: rule.map(str::to_string),
            starts_at,
            ends_at,
            comment: comment.to_string(),
            created_by: created_by.to_string(),
        })
    }

    /// Silences that have not ended by `now`, soonest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn silences(&self, now: i64) -> Result<Vec<SilenceRow>> {
        sqlx::query(
            "SELECT id, rule, starts_at, ends_at, comment, created_by FROM silences
             WHERE ends_at > $1 ORDER BY starts_at, id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|r| {
            Ok(SilenceRow {
                id: r.try_get(0)?,
                rule: r.try_get(1)?,
                starts_at: r.try_get(2)?,
                ends_at: r.try_get(3)?,
                comment: r.try_get(4)?,
                created_by: r.try_get(5)?,
            })
        })
        .collect()
    }

    /// Remembers an inbound event id; false when it was seen within the window already (a
    /// replay). Ids older than `forget_before` are dropped.
    ///
    /// # Errors
    /// Database errors.
    pub async fn first_sight(&self, id: &str, now: i64, forget_before: i64) -> Result<bool> {
        sqlx::query("DELETE FROM seen_events WHERE at < $1")
            .bind(forget_before)
            .execute(self.pool())
            .await?;
        let added = sqlx::query(
            "INSERT INTO seen_events (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    /// Runs `SELECT 1` on the database at `url` (a probe): Ok when it answers.
    ///
    /// # Errors
    /// The connection or query failure.
    pub async fn ping_database(url: &str) -> Result<()> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(url).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}
