//! The one error body of the API: a status and `{"error": {"kind", "message"}}`.

use agent_host::{Error, StoreError, TurnError};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error: status and `{"error": {"kind", "message"}}`.
pub(super) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"kind": self.kind, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<TurnError> for ApiError {
    fn from(e: TurnError) -> Self {
        let status = match &e {
            TurnError::UnknownPlugin(_) => StatusCode::NOT_FOUND,
            TurnError::InvalidSession(_) => StatusCode::BAD_REQUEST,
            TurnError::Plugin { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            TurnError::StoreUnavailable { .. } | TurnError::Busy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            TurnError::Conflict { .. } => StatusCode::CONFLICT,
            TurnError::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.kind(), e.to_string())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::UnknownPlugin(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_plugin", e.to_string())
            }
            Error::Invalid(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_argument", e.to_string())
            }
            Error::Store(StoreError::Unavailable(_)) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("bad path: {}", e.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("bad query string: {}", e.body_text()),
        )
    }
}
