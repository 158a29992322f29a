//! The router: public health endpoints, the JSON API, metrics and the OpenAPI description,
//! all behind the guard (rate limit, auth, headers, logging), CORS and a body size limit.

mod api;
pub(crate) mod backups;
mod drills;
pub(crate) mod health;
mod metrics;
mod monitor;
mod report;

use axum::{
    Router,
    http::{HeaderValue, Method, header},
    middleware,
    routing::{get, post},
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
};

use crate::AppState;

pub(crate) fn router(state: AppState) -> Router {
    let origins: Vec<HeaderValue> = state
        .settings
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-runbook-api-key"),
            header::HeaderName::from_static("x-request-id"),
        ]);
    Router::new()
        .route("/healthz", get(health::live))
        .route("/health/live", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/health/ready", get(health::ready))
        .route("/api/health", get(health::report))
        .route("/api/targets", get(backups::targets))
        .route("/api/backups", get(backups::backups))
        .route("/api/backups/run", post(backups::run_backup))
        .route("/api/backups/restore", post(backups::restore))
        .route("/api/drills", get(drills::drills))
        .route("/api/drills/run", post(drills::run_drill))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/oplog", get(api::oplog))
        .route("/api/cluster", get(api::cluster))
        .route("/api/probes", get(monitor::probes))
        .route("/api/heartbeats", get(monitor::heartbeats))
        .route("/api/alerts", get(monitor::alerts))
        .route(
            "/api/silences",
            get(monitor::silences).post(monitor::add_silence),
        )
        .route("/api/events", post(monitor::event))
        .route("/api/secrets", get(report::secrets))
        .route("/api/report/runbook", get(report::runbook_report))
        .route(
            "/ping/{key}",
            get(monitor::ping).post(monitor::ping).head(monitor::ping),
        )
        .route(
            "/ping/{key}/{action}",
            get(monitor::ping_action)
                .post(monitor::ping_action)
                .head(monitor::ping_action),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/api/openapi.json", get(api::openapi))
        .merge(crate::ui::routes())
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::guard,
        ))
        .layer(RequestBodyLimitLayer::new(state.settings.body_limit))
        .layer(cors)
        .with_state(state)
}
