//! Restore drills: requests to run one, and the recorded drills.

use axum::{Extension, Json, extract::State, response::IntoResponse};
use runbook_store::NewJob;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    api::{Accepted, ApiResult, accept, known_target},
    doc::ErrorBody,
};
use crate::{
    AppState,
    auth::Caller,
    error::{ApiJson, ApiQuery, AppError},
};

/// Which target to drill, from which snapshot.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrillBody {
    /// The target.
    target: String,
    /// A snapshot id (or unique prefix); default: the newest.
    #[serde(default)]
    snapshot: Option<String>,
    /// Take a backup first and drill that.
    #[serde(default)]
    backup_first: bool,
}

/// Queue a restore drill
///
/// Restore a snapshot into scratch, check it, record the restore time (RTO) and the data
/// age (RPO).
#[utoipa::path(post, path = "/api/drills/run", tag = "drills", request_body = DrillBody, responses(
    (status = 202, description = "job accepted", body = Accepted,
        headers(("Location" = String, description = "the job"))),
    (status = 400, description = "bad body", body = ErrorBody),
    (status = 404, description = "unknown target", body = ErrorBody)))]
pub(crate) async fn run_drill(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(b): ApiJson<DrillBody>,
) -> ApiResult<impl IntoResponse> {
    known_target(&state, &b.target)?;
    let new = NewJob {
        kind: runbook_store::JobKind::Drill,
        target: b.target,
        params: serde_json::json!({
            "snapshot": b.snapshot,
            "backup_first": b.backup_first,
            "reason": "api",
        }),
        requested_by: caller.actor.clone(),
    };
    accept(&state, &caller, new, "drill.run").await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DrillQuery {
    /// Only this target.
    target: Option<String>,
    /// Only drills within this long (a duration such as `90d`).
    #[param(pattern = "^[1-9][0-9]{0,5}(s|m|h|d|w)$")]
    since: Option<String>,
}

/// Recorded restore drills, newest first
///
/// Each with its snapshot, restore time (RTO), data age (RPO), checks and outcome.
#[utoipa::path(get, path = "/api/drills", tag = "drills", params(DrillQuery), responses(
    (status = 200, description = "drills", body = Vec<runbook_store::DrillRecord>),
    (status = 400, description = "bad `since` (use a duration such as 90d)", body = ErrorBody),
    (status = 404, description = "unknown target", body = ErrorBody)))]
pub(crate) async fn drills(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DrillQuery>,
) -> ApiResult<Json<Vec<runbook_store::DrillRecord>>> {
    if let Some(t) = &q.target {
        known_target(&state, t)?;
    }
    let since = match &q.since {
        Some(s) => {
            let window = runbook_drill::parse_since(s).map_err(AppError::bad_request)?;
            let ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
            state.clock.now_ms().saturating_sub(ms)
        }
        None => 0,
    };
    Ok(Json(
        state.store.drills(q.target.as_deref(), since, 500).await?,
    ))
}
