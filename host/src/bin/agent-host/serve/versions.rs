//! The HTTP routes of a session's kept versions: list, read, roll back, fork.
//! The token is checked before they run (`auth.rs`); the bodies of rollback and
//! fork are read with `body.rs`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Json, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;
use super::body;
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
    _: Caller,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    let versions = app.host.versions(&plugin, &session).await?;
    Ok(Json(versions_json(&versions)).into_response())
}

async fn show(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String, u64)>, PathRejection>,
    _: Caller,
) -> Result<Response, ApiError> {
    let Path((plugin, session, version)) = path?;
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
    _: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    let body: RollbackBody = body::json(&app, body).await?;
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
    _: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    let body: ForkBody = body::json(&app, body).await?;
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
