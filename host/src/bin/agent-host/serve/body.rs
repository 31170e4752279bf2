//! Request bodies: read by the handlers, once the token was checked (`auth.rs`),
//! within a size limit and `[server] body_timeout`. No route reads a body through
//! an axum extractor (`Bytes`, `Json`), whose rejections are plain text and whose
//! reads have no timeout.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body::Body as _;
use serde::de::DeserializeOwned;

use super::App;
use super::api_error::ApiError;

/// Largest body of a rollback or a fork (a few small JSON fields).
pub(super) const MAX_JSON_BODY: usize = 64 << 10;

/// The turn's input: at most `max_input` bytes of UTF-8.
pub(super) async fn input(app: &App, body: Body) -> Result<String, ApiError> {
    let max = usize::try_from(app.loaded().config.server.max_input.as_u64()).unwrap_or(usize::MAX);
    let bytes = read(app, body, max).await?;
    String::from_utf8(bytes.into()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!(
                "the input is not UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A JSON body of at most [`MAX_JSON_BODY`] bytes, whatever its `Content-Type`
/// says (`curl -d` sends a form type).
pub(super) async fn json<T: DeserializeOwned>(app: &App, body: Body) -> Result<T, ApiError> {
    let bytes = read(app, body, MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("bad body: {e}"),
        )
    })
}

/// At most `max` bytes of `body`, read within `body_timeout`. A body that says
/// up front it is bigger (`Content-Length`) is refused before any of it is read.
pub(super) async fn read(app: &App, body: Body, max: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "input_too_large",
            format!("the body is over the limit of {max} bytes"),
        )
    };
    if body.size_hint().lower() > max as u64 {
        return Err(too_large());
    }
    let timeout = app.loaded().config.server.body_timeout;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("the request body could not be read: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request body did not arrive within {}",
                humantime::format_duration(timeout)
            ),
        )),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}
