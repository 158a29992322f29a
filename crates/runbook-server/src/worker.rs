//! The job worker. [`try_execute_next`] claims one queued job, runs it through the backup
//! engine on a blocking thread, and records the outcome as the job's state, an ops-log entry
//! and metrics. The serve loop calls it repeatedly; tests call it directly.

use runbook_store::{Job, JobKind, JobState};

use crate::{
    AppState,
    ops::{self, Done, Operation},
};

/// What one step did.
#[derive(Debug)]
pub enum Outcome {
    /// No job was waiting.
    Idle,
    /// This job ran (it may have failed; see its state).
    Ran(Box<Job>),
}

/// How many times a job whose failures are temporary is tried in all.
pub const MAX_ATTEMPTS: i64 = 4;

/// How long a job waits before attempt `attempts + 1`: 30 s, 1 min, 2 min, … at most 10 min.
#[must_use]
pub fn retry_delay_ms(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(1, 6) - 1).unwrap_or(0);
    (30_000_i64 << doublings).min(600_000)
}

/// Claims and runs the next job, if any.
///
/// # Errors
/// State store errors only; a failing job is an `Ok(Ran)` with state `failed`.
pub async fn try_execute_next(state: &AppState) -> Result<Outcome, runbook_store::Error> {
    let (owner, lease_until) = crate::cluster::job_lease(state);
    let Some(job) = state
        .store
        .claim_leased(state.clock.now_ms(), &owner, lease_until)
        .await?
    else {
        return Ok(Outcome::Idle);
    };
    let engine = state.engine.clone();
    let run = job.clone();
    let now = jiff::Timestamp::from_millisecond(state.clock.now_ms())
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let result = tokio::task::spawn_blocking(move || {
        let op = Operation::from_job(&engine, &run, now)?;
        ops::execute(&engine, &run.target, op, now, &mut |_| {})
    })
    .await
    .unwrap_or_else(|e| Err(format!("job panicked: {e}").into()));
    let finished_at = state.clock.now_ms();
    state.snapshots.invalidate(&job.target);
    let (job_state, error, value) = match result {
        Ok(Done::Drill(report)) => record_drill(state, &job, *report).await?,
        Ok(Done::Backup(ops::Backed {
            snapshot,
            forgotten,
            copies,
        })) => {
            #[allow(clippy::cast_precision_loss)]
            state.metrics.backup(
                &job.target,
                snapshot.duration_seconds,
                snapshot.added_bytes,
                finished_at as f64 / 1000.0,
            );
            let v = serde_json::json!({ "snapshot": snapshot, "forgotten": forgotten, "copies": copies });
            (JobState::Succeeded, None, Some(v))
        }
        Ok(Done::Restore {
            report,
            pre_restore,
        }) => {
            let v = serde_json::json!({ "restore": report, "pre_restore_snapshot": pre_restore });
            (JobState::Succeeded, None, Some(v))
        }
        Ok(Done::Verified(v)) => (JobState::Succeeded, None, Some(v)),
        Ok(Done::Task(run)) => (JobState::Succeeded, None, serde_json::to_value(run).ok()),
        Err(e) if e.temporary && job.attempts < MAX_ATTEMPTS => {
            // Busy target, server briefly unreachable: try again later, with backoff.
            let at = finished_at + retry_delay_ms(job.attempts);
            let detail = serde_json::json!({ "job": job.id, "kind": job.kind, "error": e.message, "run_after": at }).to_string();
            state
                .audit("worker", "job.retry", &job.target, "temporary", detail)
                .await?;
            let waiting = state.store.retry_later(&job.id, &e.message, at).await?;
            tracing::warn!(job = %job.id, target = %job.target, error = %e.message, run_after = at, "job failed for a reason that may pass; retrying later");
            return Ok(Outcome::Ran(Box::new(waiting)));
        }
        Err(e) => (JobState::Failed, Some(e.message), None),
    };
    let outcome = if job_state == JobState::Succeeded {
        "ok"
    } else {
        "failed"
    };
    state.metrics.job(job.kind.as_str(), outcome);
    let detail = serde_json::json!({ "job": job.id, "kind": job.kind, "error": error }).to_string();
    state
        .audit(
            "worker",
            &format!("{}.finished", job.kind),
            &job.target,
            outcome,
            detail,
        )
        .await?;
    // Backups, copies, drills and tasks fire an alert when they fail and resolve it when they
    // next succeed; restores and verifications are asked for, and their caller sees the outcome.
    if matches!(job.kind, JobKind::Backup | JobKind::Drill | JobKind::Task) {
        crate::notify::signal(
            state,
            &format!("{}.failed", job.kind),
            &job.target,
            job_state == JobState::Failed,
            error.as_deref().unwrap_or("succeeded"),
        )
        .await?;
    }
    // Recorded in the ops log before the job shows as finished, so whoever sees it finished
    // also finds its outcome in the log.
    let done = state
        .store
        .finish(
            &job.id,
            job_state,
            error.as_deref(),
            value.as_ref(),
            finished_at,
        )
        .await?;
    Ok(Outcome::Ran(Box::new(done)))
}

/// Records a drill's report in the state store and the ops log; the job fails when the drill
/// did not pass, with the drill's one-line summary as its error.
async fn record_drill(
    state: &AppState,
    job: &Job,
    report: runbook_drill::Report,
) -> Result<(JobState, Option<String>, Option<serde_json::Value>), runbook_store::Error> {
    let rec = runbook_drill::record(&state.store, &report, &job.requested_by).await?;
    for left in &report.leftovers_removed {
        tracing::warn!(target_name = %job.target, leftover = %left, "removed scratch left by an interrupted drill");
    }
    let out = serde_json::json!({ "drill_id": rec.id, "drill": report });
    Ok(if report.outcome == runbook_drill::Outcome::Passed {
        (JobState::Succeeded, None, Some(out))
    } else {
        (JobState::Failed, Some(report.summary()), Some(out))
    })
}

/// At shutdown, after the grace period: jobs still running are recorded as interrupted (the
/// repository never shows a partial snapshot; the next run cleans up after them).
pub async fn abandon_running(state: &AppState) {
    let now = state.clock.now_ms();
    if let Ok(jobs) = state.store.jobs(None, 1000).await {
        for job in jobs.iter().filter(|j| j.state == JobState::Running) {
            let _ = state
                .store
                .finish(
                    &job.id,
                    JobState::Interrupted,
                    Some("aborted at shutdown after the grace period"),
                    None,
                    now,
                )
                .await;
            let _ = state
                .audit(
                    "worker",
                    &format!("{}.finished", job.kind),
                    &job.target,
                    "interrupted",
                    job.id.clone(),
                )
                .await;
        }
    }
}
