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

/// A JSON request body whose rejection (wrong content type, malformed JSON, unknown or missing
/// fields) is an [`AppError`]: `400` with one line naming what is wrong.
pub(crate) struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(AppError::bad_request(rejection.body_text())),
        }
    }
}

/// A query string whose rejection (a value of the wrong type, an unknown field where the
/// query refuses them) is an [`AppError`]: `400` with one line, in JSON like every error.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(rejection) => Err(AppError::bad_request(rejection.body_text())),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for AppError {
    /// Keeps axum's status (415 not JSON, 400 malformed, 422 wrong fields), as one JSON line.
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}
