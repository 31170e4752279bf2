//! The HTTP routes and their handlers.

use std::sync::Arc;
use std::time::Instant;

use agent_host::{TurnAnswer, TurnError, TurnOptions};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::App;
use super::api_error::ApiError;
use super::auth::{self, Caller};
use super::body;
use super::metrics::{PluginLabel, TurnLabels};
use super::stream;

/// The API's routes over `app`. Every `/v1` route runs behind the token check
/// (`auth::require`), which answers before any body byte is read. Every answer
/// that is not a success has the one error body (`ApiError`), unknown paths and
/// methods included.
pub(super) fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/v1/plugins", get(list_plugins))
        .route("/v1/plugins/{plugin}/sessions/{session}/turns", post(turn))
        .route(
            "/v1/plugins/{plugin}/sessions/{session}/turns/{id}/events",
            get(stream::resume),
        )
        .route("/v1/plugins/{plugin}/sessions", get(list_sessions))
        .route(
            "/v1/plugins/{plugin}/sessions/{session}",
            get(show_session).delete(delete_session),
        );
    let api = super::usage::routes(super::versions::routes(api))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth::require));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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

async fn turn(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((plugin, session)) = path?;
    let options = turn_options(&headers)?;
    let input = body::input(&app, body).await?;
    let counted = match app.tenants.start(caller) {
        Ok(counted) => counted,
        Err(busy) => {
            // Counted like the plugin's own `busy`, for a plugin that exists (a
            // "*" token may name any).
            if app.host.plugin_deadline(&plugin).is_some() {
                let outcome = Err(TurnError::Busy {
                    plugin: plugin.clone(),
                });
                record_turn(&app, plugin, &outcome, Instant::now());
            }
            return Err(busy);
        }
    };
    // The span records the tenant when it is made: no copy of it per request.
    let tenant = app.config.tokens[caller.0].tenant.get_ref();
    let span = tracing::info_span!("request", tenant = %tenant);
    if stream::wanted(&headers) {
        let turn = stream::Turn {
            plugin,
            session,
            input,
            options,
            counted,
        };
        return Ok(stream::turn(app, turn, span).await);
    }
    let started = Instant::now();
    let outcome = app
        .host
        .run_turn_with(&plugin, &session, &input, options)
        .instrument(span)
        .await;
    drop(counted);
    record_turn(&app, plugin, &outcome, started);
    let answer = outcome?;
    let mut response = axum::Json(json!({ "output": answer.output })).into_response();
    if answer.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAY, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Counts a turn's outcome and time in the metrics.
pub(super) fn record_turn(
    app: &App,
    plugin: String,
    outcome: &Result<TurnAnswer, TurnError>,
    started: Instant,
) {
    let kind = match outcome {
        Ok(answer) if answer.replayed => "replayed",
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    // Unknown plugins are not counted: their ids come from the caller.
    if matches!(outcome, Err(TurnError::UnknownPlugin(_))) {
        return;
    }
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

/// The request header that makes a turn idempotent, and the answer's header that
/// says an answer is a stored one.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
const IDEMPOTENT_REPLAY: &str = "idempotent-replay";

/// The turn's options from its request headers (`Idempotency-Key`).
fn turn_options(headers: &HeaderMap) -> Result<TurnOptions, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(TurnOptions::default());
    };
    let key = value.to_str().map_err(|_| {
        ApiError::from(TurnError::InvalidIdempotencyKey(
            "it is not printable ASCII".into(),
        ))
    })?;
    Ok(TurnOptions::idempotency_key(key))
}

async fn list_plugins(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, ApiError> {
    let token = &app.config.tokens[caller.0];
    let plugins: Vec<String> = app
        .host
        .plugins()
        .into_iter()
        .filter(|p| token.allows(p))
        .collect();
    Ok(axum::Json(json!({ "plugins": plugins })).into_response())
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
    super::usage::refresh_gauges(&app).await;
    let stats = app.host.stats();
    app.metrics
        .instances
        .set(i64::try_from(stats.instances).unwrap_or(i64::MAX));
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
