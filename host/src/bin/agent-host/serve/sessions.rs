//! The session routes: list a plugin's sessions, show one, delete one.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::App;
use super::api_error::ApiError;
use super::auth::Caller;

/// The routes, added to the API's.
pub(super) fn routes(router: Router<Arc<App>>) -> Router<Arc<App>> {
    router
        .route("/v1/plugins/{plugin}/sessions", get(list_sessions))
        .route(
            "/v1/plugins/{plugin}/sessions/{session}",
            get(show_session).delete(delete_session),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_sessions(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
    _: Caller,
) -> Result<Response, ApiError> {
    let Path(plugin) = path?;
    let Query(query) = query?;
    let page = app
        .host
        .list_sessions(&plugin, query.after.as_deref(), query.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(json!({ "sessions": page.sessions, "next": page.cursor })).into_response())
}

async fn show_session(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    _: Caller,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    let snapshot = app.host.inspect(&plugin, &session).await?;
    if !snapshot.exists {
        return Err(no_session(&plugin, &session));
    }
    Ok(axum::Json(crate::views::session_json(&session, &snapshot)).into_response())
}

async fn delete_session(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    _: Caller,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    if !app.host.clear_session(&plugin, &session).await? {
        return Err(no_session(&plugin, &session));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn no_session(plugin: &str, session: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_session",
        format!("plugin {plugin} has no session {session:?}"),
    )
}
