//! One error type for every handler: a JSON body with a message; 500s are logged with the
//! request id and never show their cause to the client.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// An API error.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
}

impl AppError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

impl From<runbook_store::Error> for AppError {
    fn from(e: runbook_store::Error) -> Self {
        match e {
            runbook_store::Error::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, e.to_string())
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
