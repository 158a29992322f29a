//! `GET /api/secrets` and `GET /api/report/runbook`.

use axum::{
    Json,
    extract::{Query, State},
    response::IntoResponse,
};

use super::api::ApiResult;
use crate::AppState;

/// `GET /api/secrets` (owner): names, ages and due dates, never values.
pub(crate) async fn secrets(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(Json(crate::secrets::refresh(&state).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    #[serde(default)]
    format: ReportFormat,
}

#[derive(serde::Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ReportFormat {
    #[default]
    Md,
    Html,
}

/// `GET /api/report/runbook[?format=md|html]`: the operations runbook of this installation.
pub(crate) async fn runbook_report(
    State(state): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<impl IntoResponse> {
    let md = crate::report::markdown(&state).await?;
    Ok(if q.format == ReportFormat::Html {
        (
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::report::to_html(&md),
        )
    } else {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/markdown; charset=utf-8",
            )],
            md,
        )
    })
}
