//! The API's router: each resource's routes (`turns`, `streams`, `sessions`,
//! `versions`, `schedules`, `usage`, and MCP's `mcp`) behind the token check, the
//! plugin list, health, metrics, and the operator's `admin` routes behind theirs.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::App;
use super::api_error::ApiError;
use super::auth::{self, Caller};

/// The API's routes over `app`. Every `/v1` route runs behind the token check
/// (`auth::require`), which answers before any body byte is read. Every answer
/// that is not a success has the one error body (`ApiError`), unknown paths and
/// methods included.
pub(super) fn router(app: Arc<App>) -> Router {
    let api = Router::new().route("/v1/plugins", get(list_plugins));
    let api = super::turns::routes(api);
    let api = super::streams::routes(api);
    let api = super::sessions::routes(api);
    let api = super::versions::routes(api);
    let api = super::schedules::routes(api);
    let api = super::mcp::routes(api, &app);
    let api = super::usage::routes(api)
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::require));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api)
        .merge(super::admin::routes(&app))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(super::trace_context::continue_trace))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method",
    )
}

async fn list_plugins(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, ApiError> {
    let token = caller.token();
    let plugins: Vec<String> = app
        .host
        .plugins()
        .into_iter()
        .filter(|p| token.allows(p))
        .collect();
    Ok(axum::Json(json!({ "plugins": plugins })).into_response())
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

/// The process answers: never depends on the store (a liveness probe that does
/// would restart every replica during a store outage).
async fn livez() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready for turns: every configured plugin is loaded (but those the config lets
/// fail, `start_with_failed_plugins`, which the answer lists) and the store
/// answers; 503 with the reason otherwise.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let served = app.loaded();
    let loaded = app.host.plugins().len();
    let configured = served.config.plugins.len() - served.failed.len();
    let reason = match app.host.store().ping().await {
        Err(e) => Some(format!("the store does not answer: {e}")),
        Ok(()) if loaded < configured => {
            Some(format!("{loaded} of {configured} plugins are loaded"))
        }
        Ok(()) => None,
    };
    match reason {
        None => axum::Json(json!({"status": "ready", "plugins": loaded, "failed": served.failed}))
            .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    super::usage::refresh_gauges(&app).await;
    let stats = app.host.stats();
    app.metrics
        .instances
        .set(i64::try_from(stats.instances).unwrap_or(i64::MAX));
    app.metrics
        .waiting_for_core
        .set(i64::try_from(stats.waiting_for_core).unwrap_or(i64::MAX));
    app.metrics.sync_retries(stats.conflicts);
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
