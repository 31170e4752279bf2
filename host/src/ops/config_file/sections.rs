//! The sections of the config file as serde reads them: `[store]`, `[server]`,
//! `[[plugin]]` (with its `limits`) and `[[token]]`, with their defaults and units
//! (`[[admin]]` is in `admin.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::config::outbound::Outbound;
use crate::config::{Limits, PluginConfig};
use crate::store::keys::DEFAULT_ROOT;

use super::budget::BudgetSection;
use super::outbound::OutboundSection;
use super::quota::QuotaSection;
use crate::store::RedisOptions;

/// `[store]`: where state lives.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreSection {
    /// A Redis URL; `REDIS_URL` in the environment overrides it. Without one the
    /// embedded store is used.
    #[serde(default)]
    pub url: Option<Secret>,
    /// The embedded store's file. Default: `state.redb` next to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The first segment of every key. Default `agent`.
    #[serde(default = "default_root")]
    pub root: String,
    /// Upper bound on one Redis call. Default 3 s.
    #[serde(default = "default_op_timeout", deserialize_with = "duration")]
    pub op_timeout: Duration,
    /// PEM file of the CA of the Redis server's certificate (`rediss://`).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate for Redis (with `tls_key`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Replicas that must have a commit before a turn is reported committed (Redis
    /// `WAIT`). Default 0.
    #[serde(default)]
    pub wait_replicas: u32,
    /// How long a commit waits for them. Default 1 s.
    #[serde(default = "default_wait_timeout", deserialize_with = "duration")]
    pub wait_timeout: Duration,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: None,
            path: None,
            root: default_root(),
            op_timeout: default_op_timeout(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            wait_replicas: 0,
            wait_timeout: default_wait_timeout(),
        }
    }
}

/// `[server]`: the HTTP server of `agent-host serve`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSection {
    /// Address to listen on. Default `127.0.0.1:8080`; port 0 picks a free one.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where compiled plugins are cached. Default: `cache` next to the config file.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// The most bytes of compiled plugins the cache keeps; the least recently
    /// used go first. Default 512 MiB.
    #[serde(default = "default_cache_max")]
    pub cache_max: ByteSize,
    /// Largest turn input accepted. Default 1 MiB.
    #[serde(default = "default_max_input")]
    pub max_input: ByteSize,
    /// How long a shutdown waits for turns in flight. Default 30 s.
    #[serde(default = "default_grace", deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Plugin instances that may run at once. Default 256.
    #[serde(default = "default_slots")]
    pub instance_slots: u32,
    /// Memory of a finished instance kept in its slot and reset by copying
    /// (see `HostBuilder::keep_resident`; "32 MiB" suits Python and
    /// JavaScript plugins). Default 0.
    #[serde(default)]
    pub keep_resident: ByteSize,
    /// Connections served at once. Beyond it a few more are accepted for
    /// `/healthz` and `/metrics` only (every other request gets 503 `busy`), so
    /// probes still answer when the server is full. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a client may take to send a request's head (line and headers),
    /// from its first byte. Default 10 s.
    #[serde(default = "default_header_timeout", deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// How long a client may take to send a turn's body. Default 30 s.
    #[serde(default = "default_body_timeout", deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// How long an open connection may wait without a request before it is
    /// closed. Default 60 s.
    #[serde(default = "default_idle_timeout", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// How long a streamed turn's events are kept for a client that reconnects.
    /// Default 5 min.
    #[serde(default = "default_stream_ttl", deserialize_with = "duration")]
    pub stream_ttl: Duration,
    /// Most bytes of one stream's events kept. Default 1 MiB.
    #[serde(default = "default_stream_buffer")]
    pub stream_buffer: ByteSize,
    /// How long guest code may wait in line for a core before a new turn gets
    /// 503 `busy` at once (see `HostBuilder::max_queue_delay`; "0s" never
    /// refuses). Default 100 ms.
    #[serde(default, deserialize_with = "optional_duration")]
    pub max_queue_delay: Option<Duration>,
    /// Server processes sharing `listen`, each single-threaded (`serve
    /// --workers`). Default 1: one multi-threaded process.
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// At start, a plugin that fails to load (cannot be read, compiled or
    /// described) is logged and left out, and the others are served, instead of
    /// stopping the start. `GET /admin/config` lists it with the reason.
    /// Default false.
    #[serde(default)]
    pub start_with_failed_plugins: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            cache_dir: None,
            cache_max: default_cache_max(),
            max_input: default_max_input(),
            shutdown_grace: default_grace(),
            instance_slots: default_slots(),
            keep_resident: ByteSize::b(0),
            max_connections: default_max_connections(),
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            idle_timeout: default_idle_timeout(),
            max_queue_delay: None,
            workers: default_workers(),
            stream_ttl: default_stream_ttl(),
            stream_buffer: default_stream_buffer(),
            start_with_failed_plugins: false,
        }
    }
}

impl ServerSection {
    /// What is wrong with the section's numbers, if anything.
    pub(super) fn problem(&self) -> Option<String> {
        if self.max_connections == 0 {
            return Some("max_connections must be at least 1".into());
        }
        if !(1..=1024).contains(&self.workers) {
            return Some("workers must be 1 to 1024".into());
        }
        let timeouts = [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
            ("stream_ttl", self.stream_ttl),
        ];
        timeouts
            .iter()
            .find(|(_, t)| *t < Duration::from_millis(1))
            .map(|(name, _)| format!("{name} must be at least 1ms"))
    }
}

/// One `[[plugin]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PluginSection {
    /// The id clients call it by.
    pub id: Spanned<String>,
    /// The component file.
    pub wasm: Spanned<PathBuf>,
    /// The key prefix of its state (the tenant).
    pub prefix: Spanned<String>,
    /// What it is for, in a sentence: `serve` shows it to MCP clients.
    pub description: Option<String>,
    /// Session lifetime after the last write; none: forever.
    #[serde(default, deserialize_with = "optional_duration")]
    pub default_ttl: Option<Duration>,
    /// Reads extend the session's lifetime too.
    #[serde(default)]
    pub sliding_ttl: bool,
    /// Limits; what is not given keeps its default.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Environment variables the plugin sees (ordinary configuration, visible to
    /// it; secrets go in `outbound` secret headers).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Lets an outbound origin be `*`.
    #[serde(default)]
    pub allow_any_origin: bool,
    /// The origins the plugin may send HTTP requests to (none: no network).
    #[serde(default)]
    pub outbound: Vec<OutboundSection>,
    /// Turns one instance may serve (`PluginConfig::with_instance_reuse`; the
    /// README says what it weakens). Default 0: a fresh instance per turn.
    #[serde(default)]
    pub instance_reuse: u32,
    /// How long the answer of a turn sent with an `Idempotency-Key` is kept
    /// (default 24h).
    #[serde(default, deserialize_with = "optional_duration")]
    pub idempotency_ttl: Option<Duration>,
    /// State versions kept per session (`PluginConfig::with_keep_versions`).
    #[serde(default)]
    pub keep_versions: u32,
    /// How often a failed scheduled turn runs again
    /// (`PluginConfig::with_schedule_retries`; default 3).
    #[serde(default)]
    pub schedule_retries: Option<u32>,
    /// The `wasi:keyvalue` buckets it may open (`PluginConfig::with_buckets`);
    /// absent: any.
    #[serde(default)]
    pub buckets: Option<Vec<String>>,
    /// What it may keep in the store (`PluginConfig::with_quota`); what is not
    /// given keeps its default (100,000 sessions, 1 GiB).
    #[serde(default)]
    pub quota: QuotaSection,
    /// Tokens it may spend on metered model calls (`PluginConfig::with_budget`);
    /// default: no limit.
    #[serde(default)]
    pub budget: BudgetSection,
}

/// A plugin's `limits` table (see [`Limits`] for the defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct LimitsSection {
    pub memory: Option<ByteSize>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub deadline: Option<Duration>,
    pub max_value: Option<ByteSize>,
    pub max_history_items: Option<u64>,
    pub max_items_per_call: Option<u32>,
    pub max_output: Option<ByteSize>,
    pub max_stdio: Option<ByteSize>,
    pub max_emit: Option<ByteSize>,
    pub max_emit_chunks: Option<u64>,
    pub max_concurrent_turns: Option<u32>,
    pub max_values: Option<u64>,
    pub max_schedules_per_turn: Option<u32>,
    pub max_turn_bytes: Option<ByteSize>,
    pub max_requests: Option<u32>,
    pub max_response: Option<ByteSize>,
    pub max_request_body: Option<ByteSize>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    pub first_byte_timeout: Option<Duration>,
}

/// One `[[token]]`: a bearer token and the plugins it may call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenSection {
    /// Who holds it (shown in logs instead of the token).
    pub tenant: Spanned<String>,
    /// The token itself. Prefer `secret_env`, which keeps it out of the file.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The environment variable that holds the token.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// A file that holds the token, read at each load (a reload picks up a new
    /// one); relative to the config file.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Plugin ids it may call; `"*"` for all.
    pub plugins: Vec<Spanned<String>>,
    /// Turns its tenant may have in flight at once on one server, across all its
    /// plugins (tokens of the same tenant share the count; the smallest limit
    /// applies); past it a turn gets 503 `busy`. At least 1. Default: none, only
    /// each plugin's `limits.max_concurrent_turns`.
    #[serde(default, deserialize_with = "optional_at_least_one")]
    pub max_concurrent_turns: Option<u32>,
    /// Tokens its tenant may spend on metered model calls, across its plugins
    /// (tokens of the same tenant: the smallest limit applies); default: no limit.
    #[serde(default)]
    pub budget: BudgetSection,
    /// Why the secret is missing (its variable is not set), with the position.
    #[serde(skip)]
    pub(super) unresolved: Option<String>,
}

impl TokenSection {
    /// True if this token may call `plugin`.
    pub fn allows(&self, plugin: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| p.get_ref() == "*" || p.get_ref() == plugin)
    }

    /// The token, from the file or its environment variable (checked at load).
    pub fn secret(&self) -> &str {
        self.secret.as_ref().map_or("", |s| s.0.as_str())
    }
}

/// A string that is never printed: its `Debug` says `"<set>"`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub(super) String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<set>")
    }
}

fn default_root() -> String {
    DEFAULT_ROOT.into()
}
fn default_op_timeout() -> Duration {
    RedisOptions::default().op_timeout
}
fn default_wait_timeout() -> Duration {
    RedisOptions::default().wait_timeout
}
fn default_workers() -> u32 {
    1
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_cache_max() -> ByteSize {
    ByteSize::b(crate::ops::cache::DEFAULT_MAX_BYTES)
}
fn default_max_input() -> ByteSize {
    ByteSize::mib(1)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_slots() -> u32 {
    256
}
fn default_max_connections() -> u32 {
    1024
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_stream_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_stream_buffer() -> ByteSize {
    ByteSize::mib(1)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}); write e.g. 30s, 10m, 7d"
        ))
    })
}

fn optional_at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(serde::de::Error::custom(
            "max_concurrent_turns must be at least 1 (leave it out for no limit)",
        )),
        n => Ok(Some(n)),
    }
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl PluginSection {
    /// What the host needs to know about the plugin.
    pub fn config(&self) -> PluginConfig {
        let mut limits = Limits::default();
        let l = &self.limits;
        if let Some(v) = l.memory {
            limits.memory_bytes = v.as_u64();
        }
        if let Some(v) = l.deadline {
            limits.deadline = v;
        }
        if let Some(v) = l.max_value {
            limits.max_value_bytes = v.as_u64();
        }
        if let Some(v) = l.max_history_items {
            limits.max_history_items = v;
        }
        if let Some(v) = l.max_items_per_call {
            limits.max_items_per_call = v;
        }
        if let Some(v) = l.max_output {
            limits.max_output_bytes = v.as_u64();
        }
        if let Some(v) = l.max_emit {
            limits.max_emit_bytes = v.as_u64();
        }
        if let Some(v) = l.max_emit_chunks {
            limits.max_emit_chunks = v;
        }
        if let Some(v) = l.max_stdio {
            limits.max_stdio_bytes = usize::try_from(v.as_u64()).unwrap_or(usize::MAX);
        }
        if let Some(v) = l.max_concurrent_turns {
            limits.max_concurrent_turns = v;
        }
        if let Some(v) = l.max_values {
            limits.max_values = v;
        }
        if let Some(v) = l.max_schedules_per_turn {
            limits.max_schedules_per_turn = v;
        }
        if let Some(v) = l.max_turn_bytes {
            limits.max_turn_bytes = v.as_u64();
        }
        if let Some(v) = l.max_requests {
            limits.max_requests = v;
        }
        if let Some(v) = l.max_response {
            limits.max_response_bytes = v.as_u64();
        }
        if let Some(v) = l.max_request_body {
            limits.max_request_body_bytes = v.as_u64();
        }
        if let Some(v) = l.connect_timeout {
            limits.connect_timeout = v;
        }
        if let Some(v) = l.first_byte_timeout {
            limits.first_byte_timeout = v;
        }
        let mut outbound = Outbound::default();
        outbound.allow_any_origin = self.allow_any_origin;
        outbound.origins = self
            .outbound
            .iter()
            .filter_map(|o| o.resolved.clone())
            .collect();
        let config = PluginConfig::new(self.id.get_ref().clone(), self.prefix.get_ref().clone());
        let idempotency_ttl = self.idempotency_ttl.unwrap_or(config.idempotency_ttl);
        let retries = self.schedule_retries.unwrap_or(config.schedule_retries);
        config
            .with_schedule_retries(retries)
            .with_idempotency_ttl(idempotency_ttl)
            .with_keep_versions(self.keep_versions)
            .with_default_ttl(self.default_ttl)
            .with_sliding_ttl(self.sliding_ttl)
            .with_limits(limits)
            .with_env(self.env.clone().into_iter().collect())
            .with_outbound(outbound)
            .with_instance_reuse(self.instance_reuse)
            .with_buckets(self.buckets.clone())
            .with_quota(self.quota.quota())
            .with_budget(self.budget.budget())
    }
}
