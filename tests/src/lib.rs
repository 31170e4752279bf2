//! Fixtures of the integration tests: real `redis-server` processes on free loopback
//! ports ([`RedisServer`]), the plugins under test built from source
//! ([`plugins`]), and helpers to drive them through a [`Host`].

pub mod redis_server;

use std::time::Duration;

use agent_host::{Host, PluginConfig, RedisOptions, RedisStore};
use serde_json::Value;

pub use redis_server::RedisServer;

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
    /// One typical agent turn, for the benchmark.
    pub const BENCH_AGENT: &str = env!("PLUGIN_BENCH_AGENT");
    /// The chat-memory example.
    pub const CHAT_MEMORY: &str = env!("PLUGIN_CHAT_MEMORY");
    /// The notes example.
    pub const NOTES: &str = env!("PLUGIN_NOTES");
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

/// Loads `path` into `host` as plugin `id` with key prefix `prefix`.
pub async fn load(host: &Host, config: PluginConfig, path: &str) {
    host.load_plugin_file(config, path)
        .await
        .unwrap_or_else(|e| panic!("loading {path}: {e}"));
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
