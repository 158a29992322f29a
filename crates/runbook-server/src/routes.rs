//! The router: public health endpoints, the JSON API, metrics and the OpenAPI description,
//! all behind the guard (rate limit, auth, headers, logging), CORS and a body size limit.
//!
//! Every API route is registered through [`api`], which takes each path and method from the
//! handler's `#[utoipa::path]`: the router and the OpenAPI document cannot disagree.

mod api;
pub(crate) mod backups;
mod doc;
mod drills;
pub(crate) mod health;
mod metrics;
mod monitor;
mod report;

use axum::{
    Router,
    http::{HeaderValue, Method, header},
    middleware,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
};
use utoipa_axum::{router::OpenApiRouter, routes};

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
    let (api, _) = api().split_for_parts();
    Router::new()
        .merge(api)
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

/// The API routes with their OpenAPI description (everything but the dashboard).
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(doc::base())
        .routes(routes!(health::live))
        .routes(routes!(health::live_alias))
        .routes(routes!(health::ready))
        .routes(routes!(health::ready_alias))
        .routes(routes!(health::report))
        .routes(routes!(backups::targets))
        .routes(routes!(backups::backups))
        .routes(routes!(backups::run_backup))
        .routes(routes!(backups::restore))
        .routes(routes!(drills::drills))
        .routes(routes!(drills::run_drill))
        .routes(routes!(api::jobs))
        .routes(routes!(api::job))
        .routes(routes!(api::oplog))
        .routes(routes!(api::cluster))
        .routes(routes!(monitor::probes))
        .routes(routes!(monitor::heartbeats))
        .routes(routes!(monitor::alerts))
        .routes(routes!(monitor::silences, monitor::add_silence))
        .routes(routes!(monitor::event))
        .routes(routes!(report::secrets))
        .routes(routes!(report::runbook_report))
        .routes(routes!(monitor::ping))
        .routes(routes!(monitor::ping_action))
        .routes(routes!(metrics::metrics))
        .routes(routes!(api::openapi))
}

/// The OpenAPI document of this server, as served at `/api/openapi.json`.
#[must_use]
pub fn openapi_json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| doc::finish(api().split_for_parts().1))
}
