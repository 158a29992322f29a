//! Targets and backups: the target list, snapshot lists, backup and restore requests.

use axum::{Extension, Json, extract::State, http::StatusCode, response::IntoResponse};
use runbook_store::NewJob;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    api::{Accepted, ApiResult, accept, known_target},
    doc::ErrorBody,
};
use crate::{
    AppState,
    auth::Caller,
    error::{ApiJson, ApiQuery, AppError},
    scheduler,
};

/// One target as `GET /api/targets` shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct TargetView {
    /// Its name.
    name: String,
    /// `sqlite`, `files`, `postgres`, `mariadb` or `bucket`.
    kind: &'static str,
    /// Its backup schedule (cron or `every DUR`), if scheduled.
    schedule: Option<String>,
    /// The last successful backup (Unix ms): the repository's record, however it was made.
    last_success: Option<i64>,
    /// The last failed backup job (Unix ms).
    last_failure: Option<i64>,
    /// That failure's message.
    last_error: Option<String>,
    /// The next scheduled backup (Unix ms).
    next_run: Option<i64>,
    /// The last success is older than the schedule allows.
    stale: bool,
    /// Its restore drill, when configured.
    drill: Option<DrillView>,
}

/// A target's restore drill: schedule, objectives, last result.
#[derive(Serialize, ToSchema)]
pub(crate) struct DrillView {
    /// Its schedule, if scheduled.
    schedule: Option<String>,
    /// The next scheduled drill (Unix ms).
    next_run: Option<i64>,
    /// `passed`, `failed` or `error`.
    last_outcome: Option<String>,
    /// When the last drill finished (Unix ms).
    last_at: Option<i64>,
    /// The last drill's restore time (the measured RTO), ms.
    last_restore_ms: Option<i64>,
    /// The restore-time objective.
    max_restore_seconds: Option<u64>,
    /// The data-age objective.
    max_data_age_seconds: Option<u64>,
}

/// Targets with last success, last failure, next run, stale
#[utoipa::path(get, path = "/api/targets", tag = "backups",
    responses((status = 200, description = "targets", body = Vec<TargetView>)))]
pub(crate) async fn targets(State(state): State<AppState>) -> ApiResult<Json<Vec<TargetView>>> {
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
            None => None,
            Some(d) => {
                let last = state
                    .store
                    .last_drill(&t.name, None)
                    .await?
                    .map(|r| r.drill);
                let key = format!("{}:drill", t.name);
                let since = state.store.last_scheduled(&key).await?.unwrap_or(now);
                Some(DrillView {
                    schedule: d.schedule.as_ref().map(|s| s.as_str().to_string()),
                    next_run: d
                        .schedule
                        .as_ref()
                        .and_then(|s| scheduler::next_after(s, since)),
                    last_outcome: last.as_ref().map(|l| l.outcome.clone()),
                    last_at: last.as_ref().map(|l| l.finished_at),
                    last_restore_ms: last.as_ref().and_then(|l| l.restore_ms),
                    max_restore_seconds: d.max_restore.map(|m| m.as_secs()),
                    max_data_age_seconds: d.max_data_age.map(|m| m.as_secs()),
                })
            }
        };
        out.push(TargetView {
            name: t.name.clone(),
            drill,
            kind: t.kind.name(),
            schedule: t.schedule.as_ref().map(|s| s.as_str().to_string()),
            last_success: last_ok,
            last_failure: failed.as_ref().and_then(|j| j.finished_at),
            last_error: failed.and_then(|j| j.error),
            next_run: next,
            stale,
        });
    }
    Ok(Json(out))
}

/// `GET /api/backups` query: a target, and a page (`limit` at most 1,000, from `offset`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BackupsQuery {
    /// Only this target.
    target: Option<String>,
    /// Page size (oldest first); without it, every snapshot.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Snapshots to skip.
    #[serde(default)]
    offset: usize,
}

/// Snapshots across targets, oldest first
#[utoipa::path(get, path = "/api/backups", tag = "backups", params(BackupsQuery), responses(
    (status = 200, description = "snapshots", body = Vec<runbook_backup::Snapshot>,
        headers(("X-Total-Count" = usize, description = "snapshots before paging"))),
    (status = 400, description = "bad limit or offset", body = ErrorBody),
    (status = 404, description = "unknown target", body = ErrorBody)))]
pub(crate) async fn backups(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BackupsQuery>,
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

/// What to back up.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunBody {
    /// The target.
    target: String,
    /// Why (recorded with the snapshot); default `api`.
    #[serde(default)]
    reason: Option<String>,
}

/// Queue a backup
#[utoipa::path(post, path = "/api/backups/run", tag = "backups", request_body = RunBody, responses(
    (status = 202, description = "job accepted", body = Accepted,
        headers(("Location" = String, description = "the job"))),
    (status = 400, description = "bad body", body = ErrorBody),
    (status = 404, description = "unknown target", body = ErrorBody)))]
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

/// What to restore, and where.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreBody {
    /// The target.
    pub(crate) target: String,
    /// A snapshot id (or unique prefix); default `latest`.
    #[serde(default)]
    pub(crate) snapshot: Option<String>,
    /// SQLite and files targets: a path below the restore roots (relative paths land in the
    /// first). Without it, a SQLite target is restored over its live file after a
    /// pre-restore snapshot.
    #[serde(default)]
    pub(crate) to: Option<String>,
    /// PostgreSQL and MariaDB targets: the database to restore into (required).
    #[serde(default)]
    pub(crate) into: Option<String>,
    /// Replace what is there.
    #[serde(default)]
    pub(crate) force: bool,
}

/// Queue a restore
///
/// SQLite and files targets take `to`; PostgreSQL and MariaDB targets take `into`.
#[utoipa::path(post, path = "/api/backups/restore", tag = "backups", request_body = RestoreBody, responses(
    (status = 202, description = "job accepted", body = Accepted,
        headers(("Location" = String, description = "the job"))),
    (status = 400, description = "bad body, a field the target's kind does not take or lacks (`into`, `to`), or a destination outside the restore roots, through a symlink, with `..`, or one of runbook's own files", body = ErrorBody),
    (status = 404, description = "unknown target", body = ErrorBody),
    (status = 409, description = "target being backed up", body = ErrorBody)))]
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
