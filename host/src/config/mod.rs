//! What a plugin may do: its id, its key prefix, its TTLs and its limits.
//!
//! Everything here is operator policy. How the host is backed (the store URL) is
//! configured on the store itself.

use std::time::Duration;

pub mod budget;
pub mod outbound;
pub mod pricing;

use crate::error::Error;
use crate::store::keys::Namespace;

pub use self::budget::{Budget, Meter};
use self::outbound::{AllowedOrigin, Outbound};
pub use self::pricing::{Price, Pricing};
pub use crate::store::Quota;

/// The configuration of one plugin.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PluginConfig {
    /// The id the host knows the plugin by (letters, digits, `_ . - /`).
    pub id: String,
    /// The key prefix of the plugin's state, usually one per tenant; same
    /// characters as `id`. Two plugins with different prefixes never see each
    /// other's data; the same plugin loaded twice with one prefix shares it.
    pub prefix: String,
    /// How long a session lives after its last write; `None`: forever.
    pub default_ttl: Option<Duration>,
    /// Reads (`load`, `items`) extend a session's expiry to `default_ttl` from now.
    pub sliding_ttl: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Environment variables the plugin sees (only these; ordinary configuration,
    /// never secrets: those go in [`AllowedOrigin`] secret headers).
    pub env: Vec<(String, String)>,
    /// What the plugin may reach over HTTP (default: nothing).
    pub outbound: Outbound,
    /// Turns one instance may serve (default 0 or 1: a fresh instance per turn).
    /// See [`PluginConfig::with_instance_reuse`].
    pub instance_reuse: u32,
    /// How long the answer of a turn run with an idempotency key is kept
    /// (default 24 h). See [`Host::run_turn_with`](crate::Host::run_turn_with).
    pub idempotency_ttl: Duration,
    /// State documents a session keeps besides its current one (default 0, at most
    /// [`MAX_KEEP_VERSIONS`]). See [`PluginConfig::with_keep_versions`].
    pub keep_versions: u32,
    /// The `wasi:keyvalue` buckets the plugin may open (`""` is the default
    /// bucket); `None`: any. See [`PluginConfig::with_buckets`].
    pub buckets: Option<Vec<String>>,
    /// What the plugin may keep in the store (default: 100,000 sessions, 1 GiB).
    /// See [`PluginConfig::with_quota`].
    pub quota: Quota,
    /// See [`PluginConfig::with_budget`].
    pub budget: Budget,
    /// How often a scheduled turn that failed runs again before it is kept as
    /// failed (default 3).
    pub schedule_retries: u32,
}

/// How often a scheduled turn that failed runs again, by default.
pub const DEFAULT_SCHEDULE_RETRIES: u32 = 3;

/// How long the answer of a turn run with an idempotency key is kept, by default.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Most versions a plugin may keep per session.
pub const MAX_KEEP_VERSIONS: u32 = 100;

impl PluginConfig {
    /// A plugin with default TTL "never" and default limits.
    pub fn new(id: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            prefix: prefix.into(),
            default_ttl: None,
            sliding_ttl: false,
            limits: Limits::default(),
            env: Vec::new(),
            outbound: Outbound::default(),
            instance_reuse: 0,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            keep_versions: 0,
            buckets: None,
            quota: Quota::default(),
            budget: Budget::UNLIMITED,
            schedule_retries: DEFAULT_SCHEDULE_RETRIES,
        }
    }

    /// Sets how often a scheduled turn that failed (the plugin's error, a trap, its
    /// deadline) runs again, with backoff, before it is kept as failed.
    pub fn with_schedule_retries(mut self, retries: u32) -> Self {
        self.schedule_retries = retries;
        self
    }

    /// Bounds what the plugin keeps in the store: its live sessions and the bytes
    /// of everything it keeps (states, histories, kept versions, plugin-wide values
    /// and `wasi:keyvalue` keys, idempotency records, buffered stream events, with
    /// their keys; see [`Quota`]). A turn (or a rollback or fork) that would go over
    /// writes nothing and fails with `TurnError::QuotaExceeded`; deletes, clears and
    /// expiry free quota, and reads always work. The count lives in the store, so
    /// every host sharing it enforces one quota. [`Quota::UNLIMITED`] lifts it.
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }

    /// Bounds the tokens the plugin spends on metered model calls (origins with
    /// [`AllowedOrigin::with_meter`](crate::AllowedOrigin::with_meter)) per UTC
    /// day and month. Once spent, its next request to a metered origin is refused
    /// inside the plugin before anything leaves the host; other origins are not
    /// affected. The counts live in the store, so every host sharing it enforces
    /// one budget; requests in flight when it runs out finish. Default: none.
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Lets the plugin open only these `wasi:keyvalue` buckets (`""` is the
    /// default bucket); opening another answers `access-denied`. Every bucket lives
    /// in the plugin's namespace whatever this says: it only narrows what the
    /// plugin's code may use (for example, one bucket per feature).
    pub fn with_buckets(mut self, buckets: Option<Vec<String>>) -> Self {
        self.buckets = buckets;
        self
    }

    /// Lets one instance serve up to `turns` turns of this plugin, one at a time,
    /// instead of a fresh instance per turn (0 and 1: fresh, the default).
    ///
    /// What it weakens: the plugin's globals (its heap, a Python module's
    /// variables, a JavaScript module's top level) survive from one turn to the
    /// next, and those turns may belong to different sessions of this plugin, so a
    /// plugin that keeps data in globals can show one session's data in another.
    /// State calls are unaffected: every turn sees only its own session. An
    /// instance is thrown away after a trap, a deadline, a memory kill, a turn that
    /// did not commit (a conflict retry gets another instance) and after `turns`
    /// turns. What it buys: no instantiation and no memory reset per turn
    /// (BENCHMARKS.md). Idle instances hold instance slots: at most
    /// `max_concurrent_turns` of them per plugin.
    pub fn with_instance_reuse(mut self, turns: u32) -> Self {
        self.instance_reuse = turns;
        self
    }

    /// Sets how long the answer of a turn run with an idempotency key is kept
    /// (at least 1 ms).
    pub fn with_idempotency_ttl(mut self, ttl: Duration) -> Self {
        self.idempotency_ttl = ttl;
        self
    }

    /// Keeps, per session, the last `n` state documents a commit replaced or
    /// deleted, with their version numbers, when they were written and the history
    /// length then; they expire with the session and go with it. They cost up to
    /// `n` times the state's size per session. See `Host::versions`,
    /// `Host::rollback` and `Host::fork`.
    pub fn with_keep_versions(mut self, n: u32) -> Self {
        self.keep_versions = n;
        self
    }

    /// Sets the environment variables the plugin sees.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    /// Lets the plugin send HTTP requests to `origin`.
    pub fn with_origin(mut self, origin: AllowedOrigin) -> Self {
        self.outbound.origins.push(origin);
        self
    }

    /// Replaces what the plugin may reach over HTTP.
    pub fn with_outbound(mut self, outbound: Outbound) -> Self {
        self.outbound = outbound;
        self
    }

    /// Sets the default TTL of sessions.
    pub fn with_default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Turns sliding expiry on or off.
    pub fn with_sliding_ttl(mut self, on: bool) -> Self {
        self.sliding_ttl = on;
        self
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the config and builds the plugin's namespace under `root`.
    pub(crate) fn namespace(&self, root: &str) -> Result<Namespace, Error> {
        Namespace::new("plugin", &self.id).map_err(|e| Error::Config(format!("plugin id: {e}")))?;
        if self
            .default_ttl
            .is_some_and(|t| t < Duration::from_millis(1))
        {
            return Err(Error::Config(format!(
                "plugin {}: default_ttl must be at least 1ms",
                self.id
            )));
        }
        if self.keep_versions > MAX_KEEP_VERSIONS {
            return Err(Error::Config(format!(
                "plugin {}: keep_versions is at most {MAX_KEEP_VERSIONS}",
                self.id
            )));
        }
        if self.idempotency_ttl < Duration::from_millis(1) {
            return Err(Error::Config(format!(
                "plugin {}: idempotency_ttl must be at least 1ms",
                self.id
            )));
        }
        for bucket in self.buckets.iter().flatten() {
            crate::store::keys::check_bucket(bucket)
                .map_err(|e| Error::Config(format!("plugin {}: buckets: {e}", self.id)))?;
        }
        self.limits
            .check()
            .map_err(|e| Error::Config(format!("plugin {}: {e}", self.id)))?;
        self.outbound
            .check()
            .map_err(|e| Error::Config(format!("plugin {}: {e}", self.id)))?;
        Namespace::new(root, &self.prefix).map_err(Error::Config)
    }
}

/// Per-plugin limits. Every one is enforced by the host; a guest that reaches one
/// gets a typed error (or is stopped, for memory and time) and the operator a log
/// line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Linear memory of one instance, in bytes. Default 64 MiB.
    pub memory_bytes: u64,
    /// Wall-clock time of one turn. Default 10 s.
    pub deadline: Duration,
    /// Largest state document, plugin-wide value, or one append, in bytes.
    /// Default 1 MiB.
    pub max_value_bytes: u64,
    /// Longest history of one session. Default 10,000 items.
    pub max_history_items: u64,
    /// Most items one call returns or takes (`items`, `list-sessions`, `append`).
    /// Default 1,000.
    pub max_items_per_call: u32,
    /// Largest answer or error text a turn may return, in bytes; a bigger one fails
    /// the turn ([`crate::TurnError::OutputTooLarge`]) and nothing is written.
    /// Default 1 MiB.
    pub max_output_bytes: u64,
    /// Bytes of stdout and of stderr kept per turn for the logs. Default 64 KiB.
    pub max_stdio_bytes: usize,
    /// Bytes a turn may emit (`output.emit`, streamed to the caller); past it the
    /// plugin's `emit` gets `quota-exceeded`. Default 1 MiB.
    pub max_emit_bytes: u64,
    /// Chunks a turn may emit. Default 10,000.
    pub max_emit_chunks: u64,
    /// Turns of this plugin that may run at once on one host; a turn beyond it
    /// fails at once with [`crate::TurnError::Busy`], so one plugin (tenant) cannot
    /// take every instance slot or every core. Default 64.
    pub max_concurrent_turns: u32,
    /// Most plugin-wide values (`set` keys) the plugin may hold at once. Default
    /// 10,000.
    pub max_values: u64,
    /// Most schedules one turn may add (`schedule.at`, `schedule.after`). Default
    /// 16.
    pub max_schedules_per_turn: u32,
    /// Bytes one turn may write (state documents, history items, values). Default
    /// 8 MiB.
    pub max_turn_bytes: u64,
    /// Outbound HTTP requests one turn may send. Default 16.
    pub max_requests: u32,
    /// Bytes of response bodies one turn may read, all requests together. Default
    /// 8 MiB.
    pub max_response_bytes: u64,
    /// Bytes of one request body. Default 1 MiB.
    pub max_request_body_bytes: u64,
    /// How long connecting (DNS, TCP, TLS) may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long the response head, and then each part of its body, may take.
    /// Default 60 s. Every wait also ends at the turn's deadline.
    pub first_byte_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(10),
            max_value_bytes: 1 << 20,
            max_history_items: 10_000,
            max_items_per_call: 1_000,
            max_output_bytes: 1 << 20,
            max_stdio_bytes: 64 << 10,
            max_emit_bytes: 1 << 20,
            max_emit_chunks: 10_000,
            max_concurrent_turns: 64,
            max_requests: 16,
            max_response_bytes: 8 << 20,
            max_request_body_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            max_values: 10_000,
            max_schedules_per_turn: 16,
            max_turn_bytes: 8 << 20,
        }
    }
}

impl Limits {
    fn check(&self) -> Result<(), String> {
        let positive = [
            ("memory_bytes", self.memory_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("max_history_items", self.max_history_items),
            ("max_items_per_call", u64::from(self.max_items_per_call)),
            ("max_turn_bytes", self.max_turn_bytes),
            ("max_values", self.max_values),
            ("max_output_bytes", self.max_output_bytes),
            ("max_concurrent_turns", u64::from(self.max_concurrent_turns)),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("limits.{name} must be at least 1"));
        }
        if self.deadline < Duration::from_millis(1) {
            return Err("limits.deadline must be at least 1ms".into());
        }
        Ok(())
    }
}
