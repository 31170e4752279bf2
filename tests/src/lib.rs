//! Fixtures of the integration tests: real `redis-server` processes on free loopback
//! ports ([`RedisServer`]), model servers (our axum fixture [`model_server`], a
//! Python `http.server` stand-in [`python_model`], `nginx` in front of one
//! [`nginx`]), an MCP server on the official Python SDK ([`mcp_server`]), the
//! plugins under test built from source ([`plugins`]), and helpers to drive them
//! through a [`Host`].

pub mod cluster;
pub mod load;
pub mod mcp_server;
pub mod model_server;
pub mod nginx;
pub mod python_model;
pub mod redis_server;
pub mod sentinel;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use agent_host::{EmbeddedStore, Host, PluginConfig, RedisOptions, RedisStore, StateStore};
use serde_json::Value;

pub use redis_server::{RedisServer, TlsFiles};

/// Paths of the plugin components, built by `build.rs` from `tests/plugins/` and
/// `examples/`.
pub mod plugins {
    /// Runs the state operations it is given as JSON (see its source).
    pub const PROBE: &str = env!("PLUGIN_PROBE");
    /// Loops forever.
    pub const SPIN: &str = env!("PLUGIN_SPIN");
    /// Allocates without bound.
    pub const HOG: &str = env!("PLUGIN_HOG");
    /// Writes every kind of state, then traps, spins or allocates (see its source).
    pub const WRECK: &str = env!("PLUGIN_WRECK");
    /// A read-modify-write counter in the session state.
    pub const COUNTER: &str = env!("PLUGIN_COUNTER");
    /// Floods, forges and bloats what reaches the host (see its source).
    pub const HOSTILE: &str = env!("PLUGIN_HOSTILE");
    /// A counter built against the frozen `agent:state@0.1.0` WIT, without the SDK.
    pub const LEGACY: &str = env!("PLUGIN_LEGACY");
    /// Runs the `wasi:keyvalue` operations it is given as JSON; built from the
    /// standard WIT alone (see its source).
    pub const KV_PROBE: &str = env!("PLUGIN_KV_PROBE");
    /// Counts its turns through Spin's SDK for `wasi:keyvalue` and through
    /// `agent-state`, in one component (see its source).
    pub const SPIN_KV: &str = env!("PLUGIN_SPIN_KV");
    /// One typical agent turn, for the benchmark.
    pub const BENCH_AGENT: &str = env!("PLUGIN_BENCH_AGENT");
    /// The chat-memory example.
    pub const CHAT_MEMORY: &str = env!("PLUGIN_CHAT_MEMORY");
    /// The llm-chat example (calls an OpenAI-compatible model).
    pub const LLM_CHAT: &str = env!("PLUGIN_LLM_CHAT");
    /// The py-chat example: llm-chat in Python (componentize-py).
    pub const PY_CHAT: &str = env!("PLUGIN_PY_CHAT");
    /// The js-chat example: llm-chat in JavaScript (componentize-js).
    pub const JS_CHAT: &str = env!("PLUGIN_JS_CHAT");
    /// The notes example.
    pub const NOTES: &str = env!("PLUGIN_NOTES");
    /// Schedules its own follow-up turns (`agent:state/schedule`; see its source).
    pub const REMIND: &str = env!("PLUGIN_REMIND");
    /// `remind` in Python.
    pub const PY_REMIND: &str = env!("PLUGIN_PY_REMIND");
    /// `remind` in JavaScript.
    pub const JS_REMIND: &str = env!("PLUGIN_JS_REMIND");
    /// An MCP client (`agent_sdk::mcp`): `URL tools`, `URL call NAME JSONARGS` (see
    /// its source).
    pub const MCP_PROBE: &str = env!("PLUGIN_MCP_PROBE");
    /// `mcp-probe` in Python (`agent_sdk.mcp`).
    pub const PY_MCP_PROBE: &str = env!("PLUGIN_PY_MCP_PROBE");
    /// `mcp-probe` in JavaScript (`agent-sdk/mcp`).
    pub const JS_MCP_PROBE: &str = env!("PLUGIN_JS_MCP_PROBE");
    /// A tool loop (add, divide, note) with its history kept (see its source).
    pub const TOOLS_AGENT: &str = env!("PLUGIN_TOOLS_AGENT");
    /// `tools-agent` in Python.
    pub const PY_TOOLS_AGENT: &str = env!("PLUGIN_PY_TOOLS_AGENT");
    /// `tools-agent` in JavaScript.
    pub const JS_TOOLS_AGENT: &str = env!("PLUGIN_JS_TOOLS_AGENT");
    /// The py-tools example: a Python agent with a calculator and notes.
    pub const PY_TOOLS: &str = env!("PLUGIN_PY_TOOLS");
}

/// Store options for tests: fail fast when Redis is down.
pub fn test_store_options() -> RedisOptions {
    let mut options = RedisOptions::default();
    options.connect_timeout = Duration::from_millis(500);
    options.response_timeout = Duration::from_secs(1);
    options.op_timeout = Duration::from_secs(2);
    options
}

/// A store on `server`'s Redis, with [`test_store_options`].
pub fn store(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url(), test_store_options()).expect("store")
}

/// A host on `server`'s Redis.
pub fn host(server: &RedisServer) -> Host {
    Host::builder().store(store(server)).build().expect("host")
}

/// A store under test, with what it runs on: the conformance suite runs every
/// behaviour once per variant (see [`conformance!`]).
pub enum Backend {
    /// A real `redis-server` of its own.
    Redis(RedisServer),
    /// A real three-primary Redis Cluster of its own.
    Cluster(cluster::RedisCluster),
    /// The embedded store in a file of a temp dir.
    Embedded {
        /// Holds the file.
        dir: tempfile::TempDir,
        /// The open store (one process opens a file once).
        store: Option<EmbeddedStore>,
    },
}

impl Backend {
    /// A fresh Redis server that writes every command to its AOF before answering
    /// (so [`Backend::restart`] keeps every commit, as the embedded store does).
    pub fn redis() -> Self {
        Self::Redis(RedisServer::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]))
    }

    /// A fresh Redis Cluster.
    pub fn cluster() -> Self {
        Self::Cluster(cluster::RedisCluster::start())
    }

    /// A fresh embedded store file.
    pub fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path().join("state.redb")).expect("embedded store");
        Self::Embedded {
            dir,
            store: Some(store),
        }
    }

    /// A store on the backend (a new connection for Redis, the open file for the
    /// embedded store).
    pub fn store(&self) -> Arc<dyn StateStore> {
        match self {
            Self::Redis(server) => Arc::new(store(server)),
            Self::Cluster(cluster) => Arc::new(
                RedisStore::open(&cluster.url(), test_store_options()).expect("cluster store"),
            ),
            Self::Embedded { store, .. } => Arc::new(store.clone().expect("store is open")),
        }
    }

    /// A host on the backend that keeps compiled plugins in `target/plugin-cache`
    /// for the whole test run (a Python component is ~20 MB, a JavaScript one ~12).
    pub fn cached_host(&self) -> Host {
        Host::builder()
            .shared_store(self.store())
            .cache_dir(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/plugin-cache"
            ))
            .build()
            .expect("host")
    }

    /// A host on the backend.
    pub fn host(&self) -> Host {
        Host::builder()
            .shared_store(self.store())
            .build()
            .expect("host")
    }

    /// Restarts the backend on the same data: the Redis server (from its AOF), or
    /// the embedded file (closed and opened again). Hosts built before must be
    /// dropped first for the embedded store, whose file only one owner may open.
    pub fn restart(&mut self) {
        match self {
            Self::Redis(server) => server.restart(),
            Self::Cluster(cluster) => cluster.restart(),
            Self::Embedded { dir, store } => {
                drop(store.take());
                let path = dir.path().join("state.redb");
                *store = Some(EmbeddedStore::open(&path).expect("reopen the embedded store"));
            }
        }
    }
}

/// Expands test bodies written once as `async fn name(backend: Backend)` into one
/// test per store: `name::redis`, `name::cluster` and `name::embedded`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$name($crate::Backend::redis()).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cluster() {
                    super::$name($crate::Backend::cluster()).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$name($crate::Backend::embedded()).await
                }
            }
        )*
    };
}

/// `turns` turns of `plugin` with `input` on each of `workers` tasks at once (worker
/// `w` on session `s{w}`, its turns one after another); every answer.
pub async fn turns_at_once(
    host: &Host,
    plugin: &'static str,
    workers: usize,
    turns: usize,
    input: &'static str,
) -> Vec<String> {
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let host = host.clone();
            tokio::spawn(async move {
                let session = format!("s{worker}");
                let mut answers = Vec::new();
                for _ in 0..turns {
                    answers.push(host.run_turn(plugin, &session, input).await.unwrap());
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.expect("a turn task panicked"));
    }
    answers
}

/// The calls `INFO commandstats` counts, over the commands `count` says yes to.
pub fn command_calls(info: &str, count: impl Fn(&str) -> bool) -> u64 {
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| count(l.split(':').next().unwrap_or_default()))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Loads `path` into `host` as plugin `id` with key prefix `prefix`.
pub async fn load(host: &Host, config: PluginConfig, path: &str) {
    host.load_plugin_file(config, path)
        .await
        .unwrap_or_else(|e| panic!("loading {path}: {e}"));
}

/// A host on `backend` with the probe plugin loaded as `p` (prefix `tenant-a`) with
/// `limits`.
pub async fn probe_host(backend: &Backend, limits: agent_host::Limits) -> Host {
    let host = backend.host();
    let config = PluginConfig::new("p", "tenant-a").with_limits(limits);
    load(&host, config, plugins::PROBE).await;
    host
}

/// Runs the probe plugin `id` on `ops` (a JSON array) and returns one result per op.
pub async fn probe(host: &Host, id: &str, ops: Value) -> Vec<Value> {
    let answer = host
        .run_turn(id, "probe", &ops.to_string())
        .await
        .unwrap_or_else(|e| panic!("probe turn failed: {e}"));
    match serde_json::from_str(&answer) {
        Ok(Value::Array(results)) => results,
        other => panic!("probe answered {answer:?} ({other:?})"),
    }
}

/// The `ok` value of each of `ops` run through the probe, panicking on the first
/// `err`.
pub async fn probe_all_ok(host: &Host, id: &str, ops: Value) -> Vec<Value> {
    probe(host, id, ops)
        .await
        .into_iter()
        .map(|r| match r.get("ok") {
            Some(v) => v.clone(),
            None => panic!("an op failed: {r}"),
        })
        .collect()
}

/// Runs one op through the probe and returns its `ok` value, panicking on `err`.
pub async fn probe_ok(host: &Host, id: &str, op: Value) -> Value {
    let result = probe(host, id, Value::Array(vec![op.clone()]))
        .await
        .remove(0);
    match result.get("ok") {
        Some(v) => v.clone(),
        None => panic!("{op} failed: {result}"),
    }
}

/// Runs one op through the probe and returns its error kind, panicking on `ok`.
pub async fn probe_err(host: &Host, id: &str, op: Value) -> (String, Value) {
    let result = probe(host, id, Value::Array(vec![op.clone()]))
        .await
        .remove(0);
    match result.get("err") {
        Some(e) => (
            e["kind"].as_str().unwrap_or_default().to_string(),
            e["detail"].clone(),
        ),
        None => panic!("{op} should have failed: {result}"),
    }
}

/// Polls `check` every 20 ms until it returns true or `within` has passed; returns
/// whether it did. For waiting on real time passing (TTL expiry, a server coming
/// back), never as a stand-in for an event the test could wait on.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
