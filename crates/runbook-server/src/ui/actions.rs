//! The dashboard's actions (back up, drill, restore: queued as jobs after the role and CSRF
//! checks) and the live job page.

use axum::{
    Form, Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use runbook_store::{JobKind, NewJob, Role};
use serde::Deserialize;

use super::{Viewer, page, page_status, refused, signed_in};
use crate::{AppState, error::AppError};

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    into: Option<String>,
    to: Option<String>,
}

async fn start(state: &AppState, v: &Viewer, new: NewJob, action: &str) -> Response {
    match state
        .store
        .enqueue_audited(new, &v.actor(), action, state.clock.now_ms())
        .await
    {
        Ok(job) => Redirect::to(&format!("/jobs/{}", job.id)).into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

macro_rules! guarded {
    ($state:expr, $headers:expr, $form:expr, $role:expr) => {{
        let v = match signed_in($state, $headers).await {
            Ok(v) => v,
            Err(r) => return r,
        };
        if let Some(r) = refused(&v, &$form.csrf, $role) {
            return r;
        }
        v
    }};
}

/// "Back up now" and "Run drill" (operator): queue the job and follow it on its page.
async fn queue(
    state: &AppState,
    headers: &HeaderMap,
    name: String,
    f: &ActionForm,
    kind: JobKind,
) -> Response {
    let v = guarded!(state, headers, f, Role::Operator);
    if state.engine.config().target(&name).is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (params, action) = match kind {
        JobKind::Backup => (serde_json::json!({ "reason": "dashboard" }), "backup.run"),
        _ => (serde_json::json!({}), "drill.run"),
    };
    let new = NewJob {
        kind,
        target: name,
        params,
        requested_by: v.actor(),
    };
    start(state, &v, new, action).await
}

pub(crate) async fn backup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    queue(&state, &headers, name, &f, JobKind::Backup).await
}

pub(crate) async fn drill(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    queue(&state, &headers, name, &f, JobKind::Drill).await
}

pub(crate) async fn restore(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    let v = guarded!(&state, &headers, f, Role::Owner);
    if f.confirm.trim() != name {
        return page_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not restored",
            Some(&v),
            html! { p { "The confirmation did not match the target's name; nothing was changed. " a href={"/targets/" (name)} { "Back" } } },
        );
    }
    let caller = crate::auth::Caller {
        actor: v.actor(),
        role: Some(v.session.role),
    };
    let body = crate::routes::backups::RestoreBody {
        target: name,
        snapshot: None,
        to: f.to.filter(|s| !s.trim().is_empty()),
        into: f.into.filter(|s| !s.trim().is_empty()),
        force: false,
    };
    match crate::routes::backups::restore_job(&state, &caller, body).await {
        Ok(new) => start(&state, &v, new, "restore.run").await,
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = match signed_in(&state, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let job = match state.store.job(&id).await {
        Ok(j) => j,
        Err(e) => return AppError::from(e).into_response(),
    };
    page(
        &format!("{} of {}", job.kind, job.target),
        Some(&v),
        html! {
            div.job data-job=(job.id) aria-live="polite" {
                p { "State: " strong.state { (job.state.as_str()) } " " span.elapsed {} }
                p { progress.bar max="1" value="0" hidden {} " " span.step {} }
                p.error { (job.error.clone().unwrap_or_default()) }
            }
            p { a href={"/targets/" (job.target)} id="to-target" { "Back to " (job.target) } }
        },
    )
}

/// The job as JSON for the page's script (session-authenticated, like the page).
pub(crate) async fn job_json(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = signed_in(&state, &headers).await {
        return r;
    }
    match state.store.job(&id).await {
        Ok(j) => Json(serde_json::json!({
            // The repository work of the job's target, while it runs.
            "progress": (j.state == runbook_store::JobState::Running).then(|| runbook_backup::live(&j.target)).flatten(),
            "state": j.state.as_str(),
            "error": j.error,
            "started_at": j.started_at,
            "finished_at": j.finished_at,
            "now": state.clock.now_ms(),
        }))
        .into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}
