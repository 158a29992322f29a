//! The JSON API's shared parts (errors, target lookup, accepting a job) and the small
//! resources: jobs, the ops log and the OpenAPI description. Targets and backups, drills and
//! metrics have files of their own.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use runbook_store::NewJob;
use serde::Deserialize;

use crate::{AppState, auth::Caller, error::AppError};

pub(crate) type ApiResult<T> = Result<T, AppError>;

#[derive(Deserialize)]
pub(crate) struct TargetQuery {
    pub(crate) target: Option<String>,
}

pub(crate) async fn not_found() -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /api/openapi.json",
    )
}

pub(crate) fn known_target(state: &AppState, name: &str) -> ApiResult<()> {
    state
        .engine
        .config()
        .target(name)
        .map(drop)
        .map_err(|e| AppError::new(StatusCode::NOT_FOUND, e.to_string()))
}

pub(crate) async fn accept(
    state: &AppState,
    caller: &Caller,
    new: NewJob,
    action: &str,
) -> ApiResult<axum::response::Response> {
    // The job and its audit entry are stored together, or neither is.
    let job = state
        .store
        .enqueue_audited(new, &caller.actor, action, state.clock.now_ms())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/jobs/{}", job.id))],
        Json(serde_json::json!({ "job_id": job.id, "job": job })),
    )
        .into_response())
}

pub(crate) async fn jobs(
    State(state): State<AppState>,
    Query(q): Query<TargetQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.store.jobs(q.target.as_deref(), 200).await?))
}

pub(crate) async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.store.job(&id).await?))
}

pub(crate) async fn oplog(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.store.oplog(500).await?))
}

/// `GET /api/cluster`: this instance, the leader and the instances sharing the state store.
pub(crate) async fn cluster(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(crate::cluster::view(&state).await?))
}

pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
