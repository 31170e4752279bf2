//! The one error body of the API: a status and `{"error": {"kind", "message"}}`.

use agent_host::{Error, StateError, StoreError, TurnError};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error: status and `{"error": {"kind", "message"}}`.
pub(super) struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (503 answers have 1 by default).
    retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
        }
    }
}

impl ApiError {
    /// The error body: `{"error": {"kind", "message"}}`.
    pub(super) fn body(&self) -> serde_json::Value {
        json!({"error": {"kind": self.kind, "message": self.message}})
    }

    pub(super) fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
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
            TurnError::StoreUnavailable { .. }
            | TurnError::Busy { .. }
            | TurnError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            TurnError::Conflict { .. } | TurnError::InProgress { .. } => StatusCode::CONFLICT,
            TurnError::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
            TurnError::InvalidIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            TurnError::IdempotencyMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            TurnError::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut error = Self::new(status, e.kind(), e.to_string());
        if let TurnError::InProgress { retry_after, .. } = &e {
            error.retry_after = Some(retry_after.as_secs().max(1));
        }
        error
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::UnknownPlugin(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_plugin", e.to_string())
            }
            Error::Invalid(StateError::TooLarge { .. }) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            // One kind for a bad session id on every route, as a turn answers it
            // (`TurnError::InvalidSession`).
            Error::Invalid(StateError::InvalidKey {
                what: "session id", ..
            }) => Self::new(StatusCode::BAD_REQUEST, "invalid_session", e.to_string()),
            Error::Invalid(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_argument", e.to_string())
            }
            Error::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "no_version", e.to_string()),
            Error::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            Error::Store(StoreError::QuotaExceeded(_)) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                e.to_string(),
            ),
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
