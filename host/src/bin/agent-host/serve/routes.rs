//! The HTTP routes and their handlers.

use std::sync::Arc;
use std::time::Instant;

use agent_host::TurnError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::App;
use super::api_error::ApiError;
use super::auth::authorize;
use super::metrics::{PluginLabel, TurnLabels};

/// The API's routes over `app`; turn inputs over `max_input` bytes are refused.
pub(super) fn router(app: Arc<App>, max_input: usize) -> Router {
    Router::new()
        .route("/v1/plugins", get(list_plugins))
        .route(
            "/v1/plugins/{plugin}/sessions/{session}/turns",
            post(turn).layer(DefaultBodyLimit::max(max_input)),
        )
        .route("/v1/plugins/{plugin}/sessions", get(list_sessions))
        .route(
            "/v1/plugins/{plugin}/sessions/{session}",
            get(show_session).delete(delete_session),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn turn(
    State(app): State<Arc<App>>,
    Path((plugin, session)): Path<(String, String)>,
    headers: HeaderMap,
    input: String,
) -> Result<Response, ApiError> {
    let tenant = authorize(&app, &headers, Some(&plugin))?;
    let tenant = app.config.tokens[tenant].tenant.get_ref().as_str();
    let started = Instant::now();
    let outcome = app
        .host
        .run_turn(&plugin, &session, &input)
        .instrument(tracing::info_span!("request", %tenant))
        .await;
    let kind = outcome.as_ref().map_or_else(TurnError::kind, |_| "ok");
    // Unknown plugins are not counted: their ids come from the caller.
    if !matches!(outcome, Err(TurnError::UnknownPlugin(_))) {
        app.metrics
            .turns
            .get_or_create(&TurnLabels {
                plugin: plugin.clone(),
                outcome: kind.into(),
            })
            .inc();
        app.metrics
            .turn_seconds
            .get_or_create(&PluginLabel { plugin })
            .observe(started.elapsed().as_secs_f64());
    }
    let output = outcome?;
    Ok(axum::Json(json!({ "output": output })).into_response())
}

async fn list_plugins(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let index = authorize(&app, &headers, None)?;
    let token = &app.config.tokens[index];
    let plugins: Vec<String> = app
        .host
        .plugins()
        .into_iter()
        .filter(|p| token.allows(p))
        .collect();
    Ok(axum::Json(json!({ "plugins": plugins })).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_sessions(
    State(app): State<Arc<App>>,
    Path(plugin): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&app, &headers, Some(&plugin))?;
    let page = app
        .host
        .list_sessions(&plugin, query.after.as_deref(), query.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(json!({ "sessions": page.sessions, "next": page.cursor })).into_response())
}

async fn show_session(
    State(app): State<Arc<App>>,
    Path((plugin, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&app, &headers, Some(&plugin))?;
    let snapshot = app.host.inspect(&plugin, &session).await?;
    if !snapshot.exists {
        return Err(no_session(&plugin, &session));
    }
    Ok(axum::Json(crate::session_json(&session, &snapshot)).into_response())
}

async fn delete_session(
    State(app): State<Arc<App>>,
    Path((plugin, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&app, &headers, Some(&plugin))?;
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

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.host.store().ping().await {
        Ok(()) => axum::Json(json!({"status": "ok", "store": "ok"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "store": e.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    app.metrics
        .instances
        .set(i64::try_from(app.host.stats().instances).unwrap_or(i64::MAX));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &app.metrics.registry) {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
