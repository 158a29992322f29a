//! Restore drills: requests to run one, and the recorded drills.

use axum::{
    Extension, Json,
    extract::{Query, State},
    response::IntoResponse,
};
use runbook_store::NewJob;
use serde::Deserialize;

use super::api::{ApiResult, accept, known_target};
use crate::{
    AppState,
    auth::Caller,
    error::{ApiJson, AppError},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrillBody {
    target: String,
    #[serde(default)]
    snapshot: Option<String>,
    #[serde(default)]
    backup_first: bool,
}

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

#[derive(Deserialize)]
pub(crate) struct DrillQuery {
    target: Option<String>,
    since: Option<String>,
}

pub(crate) async fn drills(
    State(state): State<AppState>,
    Query(q): Query<DrillQuery>,
) -> ApiResult<impl IntoResponse> {
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
