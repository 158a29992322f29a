//! The JSON API's shared parts (errors, target lookup, accepting a job) and the small
//! resources: jobs, the ops log and the OpenAPI description. Targets and backups, drills and
//! metrics have files of their own.

use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use runbook_store::{Job, NewJob};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::doc::ErrorBody;
use crate::{
    AppState,
    auth::Caller,
    error::{ApiQuery, AppError},
};

pub(crate) type ApiResult<T> = Result<T, AppError>;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TargetQuery {
    /// Only this target.
    pub(crate) target: Option<String>,
}

/// A job accepted: its id, and the job as queued (follow `Location` or `/api/jobs/{id}`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// The job's id.
    job_id: String,
    /// The job as queued.
    job: Job,
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
        Json(Accepted {
            job_id: job.id.clone(),
            job,
        }),
    )
        .into_response())
}

/// Recent jobs, newest first (at most 200)
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", params(TargetQuery),
    responses((status = 200, description = "jobs", body = Vec<Job>)))]
pub(crate) async fn jobs(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TargetQuery>,
) -> ApiResult<Json<Vec<Job>>> {
    Ok(Json(state.store.jobs(q.target.as_deref(), 200).await?))
}

/// One job
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "the job", body = Job),
        (status = 404, description = "no such job", body = ErrorBody)))]
pub(crate) async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Job>> {
    Ok(Json(state.store.job(&id).await?))
}

/// Operations log, newest first (500 entries)
#[utoipa::path(get, path = "/api/oplog", tag = "oplog",
    responses((status = 200, description = "entries, each with its hash and the previous one's", body = Vec<runbook_store::Entry>)))]
pub(crate) async fn oplog(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<runbook_store::Entry>>> {
    Ok(Json(state.store.oplog(500).await?))
}

/// The instances sharing the state store, their last heartbeat, and the leader
///
/// The leader runs schedules, probes and alert rules; every instance runs jobs.
#[utoipa::path(get, path = "/api/cluster", tag = "cluster",
    responses((status = 200, description = "the cluster", body = crate::cluster::ClusterView)))]
pub(crate) async fn cluster(
    State(state): State<AppState>,
) -> ApiResult<Json<crate::cluster::ClusterView>> {
    Ok(Json(crate::cluster::view(&state).await?))
}

/// This document
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::routes::openapi_json(),
    )
}
