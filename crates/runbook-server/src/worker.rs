//! The job worker. [`try_execute_next`] claims one queued job, runs it through the backup
//! engine on a blocking thread, and records the outcome as the job's state, an ops-log entry
//! and metrics. The serve loop calls it repeatedly; tests call it directly.

use runbook_backup::BackupRequest;
use runbook_config::TargetKind;
use runbook_store::{Job, JobState};
use serde::Deserialize;

use crate::AppState;

/// What one step did.
#[derive(Debug)]
pub enum Outcome {
    /// No job was waiting.
    Idle,
    /// This job ran (it may have failed; see its state).
    Ran(Box<Job>),
}

/// Parameters of a restore job.
#[derive(Debug, Deserialize)]
struct RestoreParams {
    #[serde(default = "latest")]
    snapshot: String,
    to: Option<String>,
    into: Option<String>,
    #[serde(default)]
    force: bool,
}

fn latest() -> String {
    "latest".into()
}

/// Claims and runs the next job, if any.
///
/// # Errors
/// State store errors only; a failing job is an `Ok(Ran)` with state `failed`.
pub async fn try_execute_next(state: &AppState) -> Result<Outcome, runbook_store::Error> {
    let Some(job) = state.store.claim_next(state.clock.now_ms()).await? else {
        return Ok(Outcome::Idle);
    };
    let engine = state.engine.clone();
    let run = job.clone();
    let now = jiff::Timestamp::from_millisecond(state.clock.now_ms())
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let result = tokio::task::spawn_blocking(move || execute(&engine, &run, now))
        .await
        .unwrap_or_else(|e| Err(format!("job panicked: {e}")));
    let finished_at = state.clock.now_ms();
    state.snapshots.invalidate(&job.target);
    let (job_state, error, value) = match result {
        Ok(v) if job.kind == "drill" => record_drill(state, &job, v).await?,
        Ok(v) => (JobState::Succeeded, None, Some(v)),
        Err(e) => (JobState::Failed, Some(e), None),
    };
    let outcome = if job_state == JobState::Succeeded {
        "ok"
    } else {
        "failed"
    };
    state.metrics.job(&job.kind, outcome);
    if job.kind == "backup"
        && let Some(v) = &value
    {
        let secs = v["snapshot"]["duration_seconds"].as_f64().unwrap_or(0.0);
        let added = v["snapshot"]["added_bytes"].as_u64().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        state
            .metrics
            .backup(&job.target, secs, added, finished_at as f64 / 1000.0);
    }
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
    value: serde_json::Value,
) -> Result<(JobState, Option<String>, Option<serde_json::Value>), runbook_store::Error> {
    let report: runbook_drill::Report = match serde_json::from_value(value.clone()) {
        Ok(r) => r,
        Err(e) => {
            return Ok((
                JobState::Failed,
                Some(format!("bad drill report: {e}")),
                None,
            ));
        }
    };
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

/// Runs one job to completion on the calling (blocking) thread.
fn execute(
    engine: &runbook_backup::Engine,
    job: &Job,
    now: jiff::Timestamp,
) -> Result<serde_json::Value, String> {
    match job.kind.as_str() {
        "backup" => {
            let reason = job.params["reason"].as_str().unwrap_or("api").to_string();
            // Retention after each backup; a retention failure fails the job but the snapshot stays.
            let (snap, plan) = engine
                .backup_and_retain(&job.target, &BackupRequest { reason, time: None }, now)
                .map_err(|e| e.to_string())?;
            Ok(serde_json::json!({ "snapshot": snap, "forgotten": plan.remove.len() }))
        }
        "restore" => {
            let p: RestoreParams = serde_json::from_value(job.params.clone())
                .map_err(|e| format!("bad restore parameters: {e}"))?;
            let target = engine
                .config()
                .target(&job.target)
                .map_err(|e| e.to_string())?;
            if let Some(db) = &p.into {
                let report = engine
                    .restore_database(
                        &job.target,
                        &p.snapshot,
                        db,
                        &runbook_backup::DbRestore {
                            force: p.force,
                            ..runbook_backup::DbRestore::default()
                        },
                    )
                    .map_err(|e| e.to_string())?;
                return Ok(serde_json::json!({ "restore": report }));
            }
            let (to, force, pre) = match p.to {
                // Checked again here: the job may have been queued by an older version.
                Some(to) => (
                    engine.api_restore_path(&to).map_err(|e| e.to_string())?,
                    p.force,
                    None,
                ),
                None => {
                    let TargetKind::Sqlite { path } = &target.kind else {
                        return Err(format!(
                            "target `{}`: restoring over the live source is supported for sqlite targets; give \"to\"",
                            job.target
                        ));
                    };
                    // Undo point: the data as it is now, before it is overwritten.
                    let pre = engine
                        .backup(
                            &job.target,
                            &BackupRequest {
                                reason: "pre-restore".into(),
                                time: None,
                            },
                        )
                        .map_err(|e| {
                            format!("pre-restore snapshot failed, nothing was restored: {e}")
                        })?;
                    (path.clone(), true, Some(pre))
                }
            };
            let report = engine
                .restore(&job.target, &p.snapshot, &to, force)
                .map_err(|e| e.to_string())?;
            Ok(serde_json::json!({ "restore": report, "pre_restore_snapshot": pre }))
        }
        "drill" => {
            let req = runbook_drill::Request {
                snapshot: job.params["snapshot"].as_str().map(str::to_string),
                now,
                backup_first: job.params["backup_first"].as_bool().unwrap_or(false),
            };
            let report = runbook_drill::run(engine, &job.target, &req, &mut |_| {});
            serde_json::to_value(&report).map_err(|e| e.to_string())
        }
        "verify" => {
            let of = job.params["of"]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(30);
            let n = job.params["n"]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(1);
            match engine.verify_slice(&job.target, n, of) {
                Ok(report) => {
                    Ok(serde_json::json!({ "slice": format!("{n}/{of}"), "check": report }))
                }
                // Nothing stored yet: nothing to verify.
                Err(runbook_backup::Error::NoRepository { .. }) => {
                    Ok(serde_json::json!({ "slice": format!("{n}/{of}"), "check": null }))
                }
                Err(e) => Err(e.to_string()),
            }
        }
        other => Err(format!("unknown job kind {other:?}")),
    }
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
