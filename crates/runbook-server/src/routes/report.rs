//! `GET /api/secrets` and `GET /api/report/runbook`.

use axum::{Json, extract::State, response::IntoResponse};

use super::{api::ApiResult, doc::ErrorBody};
use crate::AppState;
use crate::error::ApiQuery;

/// Each configured secret's age and due date; never a value
///
/// Status `ok`, `due` (within 14 days) or `overdue`, when last rotated, when due, what is
/// watched to notice a rotation.
#[utoipa::path(get, path = "/api/secrets", tag = "secrets",
    responses((status = 200, description = "secrets", body = Vec<crate::secrets::SecretState>)))]
pub(crate) async fn secrets(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<crate::secrets::SecretState>>> {
    Ok(Json(crate::secrets::refresh(&state).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    /// `md` (default) or `html`.
    #[serde(default)]
    #[param(inline)]
    format: ReportFormat,
}

#[derive(serde::Deserialize, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum ReportFormat {
    #[default]
    Md,
    Html,
}

/// The operations runbook of this installation
///
/// Rendered from the configuration and the records: Markdown, or one HTML page with
/// `format=html`.
#[utoipa::path(get, path = "/api/report/runbook", tag = "report", params(ReportQuery), responses(
    (status = 200, description = "the runbook", content(
        (String = "text/markdown; charset=utf-8"), (String = "text/html; charset=utf-8"))),
    (status = 400, description = "unknown format", body = ErrorBody)))]
pub(crate) async fn runbook_report(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReportQuery>,
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
