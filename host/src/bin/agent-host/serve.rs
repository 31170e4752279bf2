//! `agent-host serve`: the HTTP API over a [`Host`].
//!
//! | method and path | |
//! |---|---|
//! | `POST /v1/plugins/{plugin}/sessions/{session}/turns` | body: the input (UTF-8); 200 `{"output"}` |
//! | `GET /v1/plugins/{plugin}/sessions?after=&limit=` | 200 `{"sessions", "next"}` |
//! | `GET /v1/plugins/{plugin}/sessions/{session}` | 200 the session, 404 if none |
//! | `DELETE /v1/plugins/{plugin}/sessions/{session}` | 204, 404 if none |
//! | `GET /v1/plugins` | 200 the plugins the token may call |
//! | `GET /healthz` | 200, or 503 when the store does not answer |
//! | `GET /metrics` | Prometheus text |
//!
//! `/v1` needs `Authorization: Bearer <token>` of a `[[token]]` that lists the plugin:
//! 401 without a known token, 403 for a plugin the token may not call. Errors are
//! `{"error": {"kind", "message"}}` with a stable `kind`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_host::config_file::ConfigFile;
use agent_host::store::{Commit, Entry, Page, Snapshot};
use agent_host::{Error, Host, StateStore, StoreError, TurnError};
use anyhow::Context;
use async_trait::async_trait;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::Instrument;

struct App {
    host: Host,
    /// SHA-256 of each token's secret, and the token's entry index.
    tokens: Vec<([u8; 32], usize)>,
    config: ConfigFile,
    metrics: Metrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TurnLabels {
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: String,
}

struct Metrics {
    registry: Registry,
    turns: Family<TurnLabels, Counter>,
    turn_seconds: Family<PluginLabel, Histogram>,
    instances: Gauge,
}

fn latency_histogram() -> Histogram {
    // 100 us .. ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Metrics {
    fn new(store_seconds: Family<OpLabel, Histogram>) -> Self {
        let mut registry = Registry::with_prefix("agent_host");
        let turns = Family::<TurnLabels, Counter>::default();
        let turn_seconds =
            Family::<PluginLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let instances = Gauge::default();
        registry.register(
            "turns",
            "Turns by plugin and outcome (ok or the error kind)",
            turns.clone(),
        );
        registry.register(
            "turn_duration_seconds",
            "Turn latency, retries included",
            turn_seconds.clone(),
        );
        registry.register(
            "store_call_duration_seconds",
            "Latency of store calls by operation",
            store_seconds,
        );
        registry.register("instances", "Plugin instances alive now", instances.clone());
        Self {
            registry,
            turns,
            turn_seconds,
            instances,
        }
    }
}

/// A store that records the latency of every call.
struct Metered {
    inner: Arc<dyn StateStore>,
    seconds: Family<OpLabel, Histogram>,
}

impl Metered {
    async fn time<T>(&self, op: &str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.seconds
            .get_or_create(&OpLabel { op: op.into() })
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

#[async_trait]
impl StateStore for Metered {
    async fn snapshot(
        &self,
        ns: &agent_host::keys::Namespace,
        session: &agent_host::keys::Name,
        tail: u32,
    ) -> Result<Snapshot, StoreError> {
        self.time("snapshot", self.inner.snapshot(ns, session, tail))
            .await
    }
    async fn load(
        &self,
        ns: &agent_host::keys::Namespace,
        session: &agent_host::keys::Name,
    ) -> Result<Option<Entry>, StoreError> {
        self.time("load", self.inner.load(ns, session)).await
    }
    async fn items(
        &self,
        ns: &agent_host::keys::Namespace,
        session: &agent_host::keys::Name,
        last: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.time("items", self.inner.items(ns, session, last))
            .await
    }
    async fn ttl(
        &self,
        ns: &agent_host::keys::Namespace,
        session: &agent_host::keys::Name,
    ) -> Result<Option<Duration>, StoreError> {
        self.time("ttl", self.inner.ttl(ns, session)).await
    }
    async fn list_sessions(
        &self,
        ns: &agent_host::keys::Namespace,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        self.time("list_sessions", self.inner.list_sessions(ns, cursor, limit))
            .await
    }
    async fn get(
        &self,
        ns: &agent_host::keys::Namespace,
        key: &agent_host::keys::Name,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.time("get", self.inner.get(ns, key)).await
    }
    async fn count_values(&self, ns: &agent_host::keys::Namespace) -> Result<u64, StoreError> {
        self.time("count_values", self.inner.count_values(ns)).await
    }
    async fn commit(
        &self,
        ns: &agent_host::keys::Namespace,
        commit: Commit,
    ) -> Result<(), StoreError> {
        self.time("commit", self.inner.commit(ns, commit)).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.time("ping", self.inner.ping()).await
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Loads the config, compiles the plugins, and serves until SIGTERM or Ctrl-C, then
/// lets the turns in flight finish (up to `server.shutdown_grace`).
pub(crate) async fn serve(config: PathBuf, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = ConfigFile::load(&config)?;
    config.require_secrets()?;
    if config.tokens.is_empty() {
        anyhow::bail!(
            "{}: no [[token]]: every request to a plugin would be refused; add one",
            config.path.display()
        );
    }
    let store_seconds =
        Family::<OpLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
    let inner = config.open_store()?;
    match inner.ping().await {
        Ok(()) => tracing::info!("store answers"),
        // The host starts anyway and recovers when the store is back; /healthz says so.
        Err(e) => tracing::warn!(error = %e, "store does not answer yet"),
    }
    let store: Arc<dyn StateStore> = Arc::new(Metered {
        inner,
        seconds: store_seconds.clone(),
    });
    let host = config.host_builder(store).build()?;
    let (mut compiled, mut cached) = (0, 0);
    for plugin in &config.plugins {
        let info = host
            .load_plugin_file(plugin.config(), plugin.wasm.get_ref())
            .await?;
        if info.from_cache {
            cached += 1;
        } else {
            compiled += 1;
        }
    }
    let tokens = config
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (digest(t.secret()), i))
        .collect();
    let listen = listen.unwrap_or(config.server.listen);
    let max_input = usize::try_from(config.server.max_input.as_u64()).unwrap_or(usize::MAX);
    let grace = config.server.shutdown_grace;
    let app = Arc::new(App {
        host,
        tokens,
        metrics: Metrics::new(store_seconds),
        config,
    });
    let router = Router::new()
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
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let startup_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(%addr, startup_ms, compiled, cached, "listening");
    // On stdout for scripts and tests: the address actually bound (port 0 picks one).
    println!("listening on http://{addr}");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing the turns in flight");
        let _ = stop_tx.send(true);
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown);
    let mut stop = stop_rx;
    tokio::select! {
        result = server => result.context("server")?,
        () = async {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace = %humantime::format_duration(grace), "turns still running after the grace period; stopping");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// An API error: status and `{"error": {"kind", "message"}}`.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
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

/// Checks the bearer token for `plugin`: 401 without a known token, 403 if it may
/// not call `plugin`. Returns the token's tenant.
fn authorize(app: &App, headers: &HeaderMap, plugin: Option<&str>) -> Result<usize, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(unauthorized)?;
    // Comparing digests: the time taken says nothing about the secrets.
    let presented = digest(presented.trim());
    let index = app
        .tokens
        .iter()
        .find(|(d, _)| *d == presented)
        .map(|(_, i)| *i)
        .ok_or_else(unauthorized)?;
    if let Some(plugin) = plugin
        && !app.config.tokens[index].allows(plugin)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token may not call plugin {plugin:?}"),
        ));
    }
    Ok(index)
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
