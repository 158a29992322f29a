//! Several `runbook serve` instances on one PostgreSQL state store.
//!
//! - **Jobs** are claimed with a lease (`LEASE_MS`) that the instance renews every
//!   `RENEW_MS` while it lives; a job whose lease ran out (its instance died) is re-queued by
//!   any instance, once, as after a restart. Claims are serialized in the database, so a job
//!   runs on one instance, and two jobs of one target never run at once anywhere.
//! - **One leader** runs the schedules, the monitor (probes, alert rules) and notice delivery:
//!   the holder of the `scheduler` lease, renewed every `RENEW_MS`. When the leader dies, another
//!   instance takes over within `LEASE_MS + RENEW_MS`; a slot missed meanwhile is caught up
//!   once (the schedule state is in the store).
//!
//! On a SQLite state store there is one instance: it leads, and at start every job found
//! running is its own from before (re-queued at once, as before).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::AppState;

/// How long a lease holds without renewal.
pub const LEASE_MS: i64 = 30_000;
/// How often an instance renews its leases and heartbeat.
pub const RENEW_MS: i64 = 10_000;
/// The scheduler's lease.
const LEADER: &str = "scheduler";

/// Who this process is in the cluster.
#[derive(Debug)]
pub struct Instance {
    /// Random per start.
    pub id: String,
    /// The host name.
    pub host: String,
    /// When it started (Unix ms).
    pub started_at: i64,
    leader: AtomicBool,
}

impl Instance {
    /// A new instance, started at `now`.
    #[must_use]
    pub fn new(now: i64) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            id: format!("{host}-{}", runbook_store::random_token(4)),
            host,
            started_at: now,
            leader: AtomicBool::new(false),
        }
    }

    /// Whether this instance runs the schedules and the monitor now.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
}

/// Whether the store can hold several instances (PostgreSQL).
fn shared(state: &AppState) -> bool {
    state.store.engine() == runbook_store::Engine::Postgres
}

/// The lease a job claimed now gets: `(owner, until)`.
#[must_use]
pub fn job_lease(state: &AppState) -> (String, i64) {
    (state.instance.id.clone(), state.clock.now_ms() + LEASE_MS)
}

/// One round: heartbeat, job-lease renewal, re-queueing of jobs whose instance died, and the
/// leader lease. Returns whether this instance leads.
///
/// # Errors
/// State-store errors.
pub async fn step(state: &AppState) -> Result<bool, runbook_store::Error> {
    let now = state.clock.now_ms();
    let me = &state.instance;
    if !shared(state) {
        me.leader.store(true, Ordering::Relaxed);
        return Ok(true);
    }
    state
        .store
        .instance_seen(&me.id, &me.host, me.started_at, now)
        .await?;
    state.store.renew_job_leases(&me.id, now + LEASE_MS).await?;
    requeue_interrupted(state, now).await?;
    let was = me.is_leader();
    let leads = state
        .store
        .try_lease(LEADER, &me.id, now, now + LEASE_MS)
        .await?;
    me.leader.store(leads, Ordering::Relaxed);
    if leads && !was {
        tracing::info!(instance = %me.id, "this instance now runs the schedules and the monitor");
    }
    Ok(leads)
}

/// Re-queues, once, every running job without a lease that holds at `horizon` (its process
/// stopped), each noted in the ops log; returns how many.
///
/// # Errors
/// State-store errors.
pub async fn requeue_interrupted(
    state: &AppState,
    horizon: i64,
) -> Result<usize, runbook_store::Error> {
    let jobs = state.store.recover_interrupted(horizon).await?;
    for job in &jobs {
        tracing::warn!(job = %job.id, target = %job.target, "job was cut off (its process stopped); retrying once");
        state
            .audit(
                "worker",
                "job.retry",
                &job.target,
                "interrupted",
                job.id.clone(),
            )
            .await?;
    }
    Ok(jobs.len())
}

/// Renews this instance's leases every `RENEW_MS` until told to stop; then hands the leader
/// lease over.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = step(&state).await {
            tracing::error!(error = %e, "cluster step failed");
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(RENEW_MS.unsigned_abs())) => {}
            _ = stop.changed() => break,
        }
    }
    if shared(&state) {
        let _ = state.store.release_lease(LEADER, &state.instance.id).await;
    }
}

/// What `GET /api/cluster` answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// The instance that answered.
    pub instance: String,
    /// The instance holding the leader lease, if any holds it now.
    pub leader: Option<String>,
    /// Whether the state store is shared (PostgreSQL): several instances may run.
    pub shared_store: bool,
    /// How long a lease lasts without renewal.
    pub lease_seconds: i64,
    /// The instances seen within two leases.
    pub instances: Vec<runbook_store::InstanceRow>,
}

/// `GET /api/cluster`: this instance, the leader, and every instance seen within two leases.
///
/// # Errors
/// State-store errors.
pub async fn view(state: &AppState) -> Result<ClusterView, runbook_store::Error> {
    let now = state.clock.now_ms();
    let shared = shared(state);
    let leader = if shared {
        state.store.lease_holder(LEADER, now).await?
    } else {
        Some(state.instance.id.clone())
    };
    let instances = if shared {
        state.store.instances(now - 2 * LEASE_MS).await?
    } else {
        vec![runbook_store::InstanceRow {
            id: state.instance.id.clone(),
            host: state.instance.host.clone(),
            started_at: state.instance.started_at,
            last_seen: now,
        }]
    };
    Ok(ClusterView {
        instance: state.instance.id.clone(),
        leader,
        shared_store: shared,
        lease_seconds: LEASE_MS / 1000,
        instances,
    })
}
