//! Schema migrations: plain SQL valid on SQLite and PostgreSQL, applied in order once each.

use crate::{Result, Store};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        params TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        result TEXT,
        attempts BIGINT NOT NULL,
        requested_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        finished_at BIGINT
    );
    CREATE INDEX jobs_state ON jobs (state, created_at);
    CREATE INDEX jobs_target ON jobs (target, finished_at);
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE TABLE schedule_state (
        target TEXT PRIMARY KEY,
        last_run BIGINT NOT NULL
    );
    CREATE TABLE oplog (
        seq BIGINT PRIMARY KEY,
        ts BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )",
    "CREATE TABLE drills (
        id TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        snapshot_id TEXT,
        snapshot_time BIGINT,
        started_at BIGINT NOT NULL,
        finished_at BIGINT NOT NULL,
        restore_ms BIGINT,
        data_age_ms BIGINT,
        outcome TEXT NOT NULL,
        failed_checks TEXT NOT NULL,
        report TEXT NOT NULL,
        requested_by TEXT NOT NULL
    );
    CREATE INDEX drills_target ON drills (target, started_at)",
    // A job that failed for a reason that may pass (busy target, unreachable server) waits
    // until `run_after` before it is tried again.
    "ALTER TABLE jobs ADD COLUMN run_after BIGINT",
    // Alerts (one row per rule and subject: firing or resolved, since when) and the outbox of
    // notifications, kept until delivered so a receiver that is down loses nothing.
    "CREATE TABLE alerts (
        rule TEXT NOT NULL,
        subject TEXT NOT NULL,
        state TEXT NOT NULL,
        since BIGINT NOT NULL,
        PRIMARY KEY (rule, subject)
    );
    CREATE TABLE notifications (
        id TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        payload TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_at BIGINT NOT NULL,
        delivered_at BIGINT,
        last_error TEXT
    );
    CREATE INDEX notifications_due ON notifications (delivered_at, next_at)",
    // One outbox row per notifier (`webhook`, `email`), each delivered and retried on its own.
    "ALTER TABLE notifications ADD COLUMN channel TEXT NOT NULL DEFAULT 'webhook'",
    // The monitor: alerts remember when their notice was last sent (for `repeat`), how bad
    // they are and why; probes keep their latest result and hourly rollups (raw detail lives
    // in memory only, so a thousand probes for a year stay small); heartbeats keep their ping
    // key and their recent runs; silences made through the API; inbound event ids seen
    // (replay protection).
    "ALTER TABLE alerts ADD COLUMN last_sent BIGINT;
    ALTER TABLE alerts ADD COLUMN fired_at BIGINT;
    ALTER TABLE alerts ADD COLUMN severity TEXT NOT NULL DEFAULT 'page';
    ALTER TABLE alerts ADD COLUMN message TEXT NOT NULL DEFAULT '';
    CREATE TABLE probe_status (
        probe TEXT PRIMARY KEY,
        ok BIGINT NOT NULL,
        since BIGINT NOT NULL,
        checked_at BIGINT NOT NULL,
        duration_ms BIGINT NOT NULL,
        error TEXT
    );
    CREATE TABLE probe_rollups (
        probe TEXT NOT NULL,
        hour BIGINT NOT NULL,
        checks BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        total_ms BIGINT NOT NULL,
        max_ms BIGINT NOT NULL,
        PRIMARY KEY (probe, hour)
    );
    CREATE TABLE probe_daily (
        probe TEXT NOT NULL,
        day BIGINT NOT NULL,
        checks BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        total_ms BIGINT NOT NULL,
        max_ms BIGINT NOT NULL,
        PRIMARY KEY (probe, day)
    );
    CREATE TABLE heartbeats (
        name TEXT PRIMARY KEY,
        ping_key TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        last_ok BIGINT,
        last_fail BIGINT
    );
    CREATE TABLE heartbeat_runs (
        name TEXT NOT NULL,
        at BIGINT NOT NULL,
        ok BIGINT NOT NULL,
        duration_ms BIGINT,
        exit_code BIGINT,
        note TEXT
    );
    CREATE INDEX heartbeat_runs_name ON heartbeat_runs (name, at);
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        rule TEXT,
        starts_at BIGINT NOT NULL,
        ends_at BIGINT NOT NULL,
        comment TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE seen_events (
        id TEXT PRIMARY KEY,
        at BIGINT NOT NULL
    )",
    // Dashboard sessions (the cookie token stored as its SHA-256) and when each API key was
    // last used (to the hour), for the dashboard's "unused for 90 days" warning.
    "CREATE TABLE sessions (
        hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT",
    // When each configured secret was last rotated; a watched one's salted fingerprint.
    "CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        rotated_at BIGINT NOT NULL,
        fingerprint TEXT,
        salt TEXT NOT NULL
    )",
    // Several instances on one store: who runs a job and until when its lease holds, the
    // instances and their heartbeats, and named leases (the scheduler's leader).
    "ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        last_seen BIGINT NOT NULL
    );
    CREATE TABLE cluster_leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_ms BIGINT NOT NULL
    )",
    // A claim asks whether the candidate's target has a running job: one index lookup.
    "CREATE INDEX jobs_running ON jobs (target) WHERE state = 'running'",
];

pub(crate) async fn run(store: &Store) -> Result<()> {
    use sqlx::Connection;
    let mut conn = store.pool().acquire().await?;
    // Instances starting at once on one PostgreSQL database: one migrates, the others wait
    // for it (a session advisory lock on this connection) and then find nothing to do.
    let shared = store.engine() == crate::Engine::Postgres;
    if shared {
        sqlx::query("SELECT pg_advisory_lock(7270002)")
            .execute(&mut *conn)
            .await?;
    }
    let result = async {
        sqlx::query("CREATE TABLE IF NOT EXISTS runbook_schema (version BIGINT NOT NULL)")
            .execute(&mut *conn)
            .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM runbook_schema")
            .fetch_one(&mut *conn)
            .await?;
        let current = usize::try_from(current.unwrap_or(0)).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let mut tx = conn.begin().await?;
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO runbook_schema (version) VALUES ($1)")
                .bind(i64::try_from(i + 1).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok::<(), crate::Error>(())
    }
    .await;
    if shared {
        sqlx::query("SELECT pg_advisory_unlock(7270002)")
            .execute(&mut *conn)
            .await?;
    }
    result
}
