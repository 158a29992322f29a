//! Targets and backups: the target list, snapshot lists, backup and restore requests.

use axum::{
    Extension, Json,
    extract::{Query, State},
    http::StatusCode,
    response::IntoResponse,
};
use runbook_store::NewJob;
use serde::Deserialize;

use super::api::{ApiResult, accept, known_target};
use crate::{
    AppState,
    auth::Caller,
    error::{ApiJson, AppError},
    scheduler,
};

pub(crate) async fn targets(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let now = state.clock.now_ms();
    let mut out = Vec::new();
    for t in state.engine.config().targets.values() {
        let (ok, failed) = state
            .store
            .last_outcomes(&t.name, runbook_store::JobKind::Backup)
            .await?;
        let last = state.store.last_scheduled(&t.name).await?.unwrap_or(now);
        let next = t
            .schedule
            .as_ref()
            .and_then(|s| scheduler::next_after(s, last));
        // The repository's record counts too: backups made by the CLI or cron.
        let last_ok = state
            .last_backup_ms(&t.name)
            .await
            .ok()
            .flatten()
            .or(ok.as_ref().and_then(|j| j.finished_at));
        let stale = t
            .schedule
            .as_ref()
            .is_some_and(|s| scheduler::is_stale(s, last_ok, now));
        let drill = match &t.drill {
            None => serde_json::Value::Null,
            Some(d) => {
                let last = state
                    .store
                    .last_drill(&t.name, None)
                    .await?
                    .map(|r| r.drill);
                let key = format!("{}:drill", t.name);
                let since = state.store.last_scheduled(&key).await?.unwrap_or(now);
                serde_json::json!({
                    "schedule": d.schedule.as_ref().map(|s| s.as_str()),
                    "next_run": d.schedule.as_ref().and_then(|s| scheduler::next_after(s, since)),
                    "last_outcome": last.as_ref().map(|l| l.outcome.clone()),
                    "last_at": last.as_ref().map(|l| l.finished_at),
                    "last_restore_ms": last.as_ref().and_then(|l| l.restore_ms),
                    "max_restore_seconds": d.max_restore.map(|m| m.as_secs()),
                    "max_data_age_seconds": d.max_data_age.map(|m| m.as_secs()),
                })
            }
        };
        out.push(serde_json::json!({
            "name": t.name,
            "drill": drill,
            "kind": t.kind.name(),
            "schedule": t.schedule.as_ref().map(|s| s.as_str()),
            "last_success": last_ok,
            "last_failure": failed.as_ref().and_then(|j| j.finished_at),
            "last_error": failed.and_then(|j| j.error),
            "next_run": next,
            "stale": stale,
        }));
    }
    Ok(Json(out))
}

/// `GET /api/backups` query: a target, and a page (`limit` at most 1,000, from `offset`).
#[derive(Deserialize)]
pub(crate) struct BackupsQuery {
    target: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

pub(crate) async fn backups(
    State(state): State<AppState>,
    Query(q): Query<BackupsQuery>,
) -> ApiResult<impl IntoResponse> {
    let engine = state.engine.clone();
    let names: Vec<String> = match &q.target {
        Some(t) => vec![
            engine
                .config()
                .target(t)
                .map_err(|e| AppError::new(StatusCode::NOT_FOUND, e.to_string()))?
                .name
                .clone(),
        ],
        None => engine.config().targets.keys().cloned().collect(),
    };
    let mut snaps = Vec::new();
    for name in names {
        snaps.extend(state.snapshot_list(&name).await?);
    }
    snaps.sort_by_key(|s| s.time);
    // The total before the page, so a client knows how many pages there are.
    let total = snaps.len();
    if let Some(limit) = q.limit {
        if limit == 0 || limit > 1000 {
            return Err(AppError::bad_request("limit: 1 to 1000"));
        }
        snaps = snaps.into_iter().skip(q.offset).take(limit).collect();
    } else if q.offset > 0 {
        snaps = snaps.into_iter().skip(q.offset).collect();
    }
    Ok(([("x-total-count", total.to_string())], Json(snaps)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunBody {
    target: String,
    #[serde(default)]
    reason: Option<String>,
}

pub(crate) async fn run_backup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<RunBody>,
) -> ApiResult<impl IntoResponse> {
    known_target(&state, &b.target)?;
    let reason = b.reason.unwrap_or_else(|| "api".into());
    let new = NewJob {
        kind: runbook_store::JobKind::Backup,
        target: b.target,
        params: serde_json::json!({ "reason": reason }),
        requested_by: caller.actor.clone(),
    };
    accept(&state, &caller, new, "backup.run").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreBody {
    pub(crate) target: String,
    #[serde(default)]
    pub(crate) snapshot: Option<String>,
    #[serde(default)]
    pub(crate) to: Option<String>,
    #[serde(default)]
    pub(crate) into: Option<String>,
    #[serde(default)]
    pub(crate) force: bool,
}

pub(crate) async fn restore(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<RestoreBody>,
) -> ApiResult<impl IntoResponse> {
    let new = restore_job(&state, &caller, b).await?;
    accept(&state, &caller, new, "restore.run").await
}

/// The restore job `b` asks for, checked: the target, `to`/`into` by kind, no backup running.
pub(crate) async fn restore_job(
    state: &AppState,
    caller: &Caller,
    mut b: RestoreBody,
) -> ApiResult<NewJob> {
    known_target(state, &b.target)?;
    validate_restore(state, &mut b)?;
    if state
        .store
        .has_active(&b.target, runbook_store::JobKind::Backup)
        .await?
    {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            format!(
                "target `{}` is being backed up; try again when the backup job has finished",
                b.target
            ),
        ));
    }
    Ok(NewJob {
        kind: runbook_store::JobKind::Restore,
        target: b.target,
        params: serde_json::json!({ "snapshot": b.snapshot.unwrap_or_else(|| "latest".into()), "to": b.to, "into": b.into, "force": b.force }),
        requested_by: caller.actor.clone(),
    })
}

/// Rejects at the request what the job could only fail on later: `into` for database targets
/// and only for them, `to` (resolved below the restore roots) for files targets.
fn validate_restore(state: &AppState, b: &mut RestoreBody) -> ApiResult<()> {
    let config = state.engine.config();
    let target = config
        .target(&b.target)
        .map_err(|e| AppError::new(StatusCode::NOT_FOUND, e.to_string()))?;
    let kind = target.kind.name();
    if target.kind.database_url().is_some() {
        if b.into.is_none() {
            return Err(AppError::bad_request(format!(
                "into: required for the {kind} target `{}` (the database to restore into)",
                b.target
            )));
        }
        if b.to.is_some() {
            return Err(AppError::bad_request(format!(
                "to: a {kind} target restores into a database; use \"into\""
            )));
        }
        return Ok(());
    }
    if b.into.is_some() {
        return Err(AppError::bad_request(format!(
            "into: only for database targets; `{}` is a {kind} target, use \"to\"",
            b.target
        )));
    }
    match &b.to {
        Some(to) => {
            let resolved = state
                .engine
                .api_restore_path(to)
                .map_err(|e| AppError::bad_request(format!("to: {e}")))?;
            b.to = Some(resolved.to_string_lossy().into_owned());
        }
        None if target.kind.live_file().is_none() => {
            return Err(AppError::bad_request(format!(
                "to: required for the files target `{}` (a path below the restore roots)",
                b.target
            )));
        }
        None => {}
    }
    Ok(())
}
