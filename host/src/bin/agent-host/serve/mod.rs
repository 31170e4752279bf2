//! `agent-host serve`: the HTTP API over a [`Host`].
//!
//! | method and path | |
//! |---|---|
//! | `POST /v1/plugins/{plugin}/sessions/{session}/turns` | body: the input (UTF-8); 200 `{"output", "usage"}` |
//! | `GET /v1/plugins/{plugin}/sessions?after=&limit=` | 200 `{"sessions", "next"}` |
//! | `GET /v1/plugins/{plugin}/sessions/{session}` | 200 the session, 404 if none |
//! | `DELETE /v1/plugins/{plugin}/sessions/{session}` | 204, 404 if none |
//! | `GET .../sessions/{session}/turns/{id}/events` | a streamed turn's events, resumed |
//! | `GET .../versions`, `POST .../rollback`, `POST .../fork` | kept versions |
//! | `POST`, `GET .../schedules`, `DELETE .../schedules/{id}` | scheduled turns |
//! | `GET /v1/plugins/{plugin}/usage` | 200 what it keeps and spent on model calls |
//! | `GET /v1/usage` | 200 what the caller's tenant spent on model calls |
//! | `GET /v1/plugins` | 200 the plugins the token may call |
//! | `POST /v1/mcp` | MCP (Streamable HTTP): a tool per plugin the token may call |
//! | `GET /healthz` | 200, or 503 when the store does not answer |
//! | `GET /livez`, `GET /readyz` | the probes: the process answers; ready for turns |
//! | `GET /metrics` | Prometheus text |
//! | `POST /admin/reload`, `GET /admin/config` | the operator's, with an `[[admin]]` token |
//!
//! `/v1` needs `Authorization: Bearer <token>` of a `[[token]]` that lists the plugin:
//! 401 without a known token, 404 for a plugin the token may not call (as for one
//! that does not exist), both before any body byte is read (`auth.rs`). Every error
//! is `{"error": {"kind", "message"}}` with a stable `kind` (`api_error.rs`);
//! on `/v1/mcp`, past the token check and the body's limits, MCP's own errors.
//!
//! Layout: `routes.rs` the router, `sessions.rs` the session routes, `versions.rs`
//! the kept versions' routes, `turns.rs` the turn route (and how every turn is
//! let in and run), `mcp.rs` the MCP server (plugins as tools), `streams.rs` streamed
//! turns and their resumption, `body.rs` reading request bodies, `tenants.rs` the
//! per-tenant turn limit, `usage.rs` the usage routes, `metrics.rs`,
//! `model_metrics.rs` (the model calls' counters), `connections.rs` (capped and
//! timed out), `signals.rs` (what stops the server, and SIGHUP), `loaded.rs` (the
//! config as served), `reload.rs` (loading plugins, at start and on a reload),
//! `admin.rs` (the operator's routes), `workers.rs` (`--workers N`:
//! one single-threaded process per core), `schedules.rs` (scheduled turns: routes
//! and the loop that runs them) and `schedule_metrics.rs`; `trace_context.rs`
//! continues a caller's trace (`traceparent`). The tenants' model budgets are in
//! `../budgets.rs`, shared with `agent-host usage`.

mod admin;
mod api_error;
mod auth;
mod body;
mod connections;
mod loaded;
mod mcp;
mod metrics;
mod model_metrics;
mod reload;
mod routes;
mod schedule_metrics;
mod schedules;
mod sessions;
mod signals;
mod streams;
mod tenants;
mod trace_context;
mod turns;
mod usage;
mod versions;
pub(crate) mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use agent_host::config_file::ConfigFile;
use agent_host::{Host, HostBuilder, StateStore};
use anyhow::Context;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use self::loaded::Loaded;
use self::metrics::{Metered, Metrics, OpLabel, latency_histogram};

struct App {
    host: Host,
    metrics: Arc<Metrics>,
    /// The config file.
    path: PathBuf,
    /// The config as served now; a reload replaces it whole.
    loaded: RwLock<Arc<Loaded>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// What only a restart changes, as it was at the start.
    started: reload::Started,
}

impl App {
    /// The config as served now (a request takes it once).
    fn loaded(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, loaded: Loaded) {
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
    }
}

/// Loads the config, compiles the plugins, and serves until SIGTERM or Ctrl-C,
/// then lets the turns in flight finish (up to `server.shutdown_grace`). SIGHUP
/// reloads the config (`reload.rs`).
pub(crate) async fn serve(
    config: PathBuf,
    listen: Option<SocketAddr>,
    workers: Option<u32>,
    globals: Vec<String>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = ConfigFile::load(&config)?;
    config.require_secrets()?;
    let worker = workers::number();
    let count = workers.unwrap_or(config.server.workers);
    if worker.is_none() && count > 1 {
        return workers::supervise(config, listen, count, globals).await;
    }
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
    let metrics = Arc::new(Metrics::new(store_seconds));
    let observed = metrics.clone();
    let mut builder = HostBuilder::from_config_file(&config, store);
    if worker.is_some() {
        // One thread: guest code runs on it alone.
        builder = builder.cores(1);
    }
    let model_calls = metrics.clone();
    let host = builder
        .on_outbound(move |event| observed.outbound(event))
        .on_model_call(move |call| model_calls.model.call(call))
        .build()?;
    let path = config.path.clone();
    let listen = listen.unwrap_or(config.server.listen);
    let grace = config.server.shutdown_grace;
    let max_connections = config.server.max_connections as usize;
    let timeouts = connections::Timeouts {
        header: config.server.header_timeout,
        idle: config.server.idle_timeout,
    };
    let at_start = reload::Started::of(&config);
    let (loaded, report) = reload::load(&host, config, None)
        .await
        .map_err(|refused| anyhow::anyhow!("{refused}"))?;
    let reload::Report {
        compiled,
        cached,
        failed,
        ..
    } = report;
    for (plugin, reason) in &failed {
        tracing::error!(%plugin, %reason, "started without this plugin (start_with_failed_plugins)");
    }
    let app = Arc::new(App {
        host,
        metrics,
        path,
        loaded: RwLock::new(Arc::new(loaded)),
        reloading: tokio::sync::Mutex::new(()),
        started: at_start,
    });
    schedules::start(&app);
    let app_for_worker = app.clone();
    let router = routes::router(app.clone());
    warn_if_few_files(max_connections);
    let listener = match worker {
        Some(_) => workers::listener(listen),
        None => tokio::net::TcpListener::bind(listen).await,
    }
    .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    // From before the address is announced, a signal stops the server the orderly
    // way (during the start, with nothing in flight, its default action is fine).
    let (signals, hangups) = signals::Signals::install()?;
    reloads(&app, hangups);
    let startup_ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(%addr, startup_ms, compiled, cached, worker, "listening");
    // On stdout for scripts and tests: the address actually bound (port 0 picks
    // one). Nobody reading it is no reason to stop.
    crate::out::line_or_ignore(format_args!("listening on http://{addr}"));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        match worker {
            Some(_) => tokio::select! {
                () = signals.recv() => {}
                () = workers::supervisor_gone(app_for_worker) => tracing::info!("the supervisor asks to stop"),
            },
            None => signals.recv().await,
        }
        tracing::info!("shutting down: finishing the turns in flight");
        let _ = stop_tx.send(true);
    };
    let server = connections::serve(listener, router, max_connections, timeouts, shutdown);
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

/// Reloads the config at each SIGHUP (a worker of `--workers` also when its
/// supervisor says so, see `workers.rs`).
fn reloads(app: &Arc<App>, mut hangups: signals::Hangups) {
    let app = app.clone();
    tokio::spawn(async move {
        while hangups.recv().await {
            // Failures are logged; the old config keeps serving.
            let _ = reload::reload(&app, "SIGHUP").await;
        }
    });
}

/// Warns when the process may open fewer files than the connections it accepts
/// (Linux: `/proc/self/limits`), which would make accepting fail before the cap.
fn warn_if_few_files(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok());
    // Connections, the reserve, and a margin for the store, the cache and logs.
    let needed = max_connections + connections::RESERVE + 64;
    if let Some(soft) = soft.filter(|soft| *soft < needed) {
        tracing::warn!(
            open_files = soft,
            needed,
            "the open-file limit is below max_connections; raise it (ulimit -n) or lower max_connections"
        );
    }
}
