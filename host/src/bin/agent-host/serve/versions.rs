//! The HTTP routes of a session's kept versions: list, read, roll back, fork.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Json, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::App;
use super::api_error::ApiError;
use super::auth::authorize;
use crate::views::{version_json, versions_json};

/// The routes, added to the API's.
pub(super) fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router
        .route(
            "/v1/plugins/{plugin}/sessions/{session}/versions",
            get(list),
        )
        .route(
            "/v1/plugins/{plugin}/sessions/{session}/versions/{version}",
            get(show),
        )
        .route(
            "/v1/plugins/{plugin}/sessions/{session}/rollback",
            post(rollback),
        )
        .route("/v1/plugins/{plugin}/sessions/{session}/fork", post(fork))
}

async fn list(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    authorize(&app, &headers, Some(&plugin))?;
    let versions = app.host.versions(&plugin, &session).await?;
    Ok(Json(versions_json(&versions)).into_response())
}

async fn show(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String, u64)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((plugin, session, version)) = path?;
    authorize(&app, &headers, Some(&plugin))?;
    match app.host.load_version(&plugin, &session, version).await? {
        Some(v) => Ok(Json(version_json(&v)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_version",
            format!("session {session:?} has no version {version}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: u64,
}

async fn rollback(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    authorize(&app, &headers, Some(&plugin))?;
    let body: RollbackBody = parse(&body)?;
    let version = app.host.rollback(&plugin, &session, body.to).await?;
    Ok(Json(json!({ "version": version })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkBody {
    to: String,
    from_version: u64,
}

async fn fork(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    authorize(&app, &headers, Some(&plugin))?;
    let body: ForkBody = parse(&body)?;
    let forked = app
        .host
        .fork(&plugin, &session, body.from_version, &body.to)
        .await?;
    let answer = json!({
        "session": body.to,
        "version": forked.version,
        "history_len": forked.history_len,
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// A JSON body, whatever its `Content-Type` says (`curl -d` sends a form type).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("bad body: {e}"),
        )
    })
}
