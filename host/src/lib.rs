//! Runs sandboxed WebAssembly agent plugins and gives each one persistent, isolated
//! session state in Redis through the WIT interface `agent-state`.
//!
//! # Layout
//! Layers, each a folder; a module imports only from its own layer or those below
//! it (`host/tests/layers.rs` checks this):
//!
//! - `bin/agent-host`: the CLI and `serve`, on top; it only parses and delegates.
//! - [`host`]: [`Host`] and [`HostBuilder`]: load plugins, run turns in the sandbox
//!   (the wasmtime engine, WASI without capabilities, memory and time limits),
//!   admit turns to the cores, reuse instances, say how a run ended, count what
//!   turns spend on models, run scheduled turns when they are due.
//! - [`ops`]: what operators use beside turns: sessions by namespace
//!   ([`admin`]), kept versions ([`checkpoints`]), scheduled turns
//!   ([`ops::schedules`]), the [`config_file`], what a component imports, the
//!   cache of compiled components.
//! - `guest`: what a plugin sees and calls: the WIT bindings, the host side of
//!   `agent-state`, `schedule` and `wasi:keyvalue`, what it emits ([`output`]),
//!   its stdio.
//! - [`outbound`]: plugins' HTTP requests: allow-list, secret headers, limits,
//!   addresses, connections kept alive, model calls metered and budgets held,
//!   the journal that replays answers to a retried turn.
//! - `turn`: one turn's staged view of its state, schedules and commit, the
//!   prefetch, idempotency keys, session locks.
//! - [`config`]: what a plugin may do ([`PluginConfig`], [`Limits`], [`Quota`],
//!   [`Budget`], what it may reach over HTTP, what model tokens cost).
//! - [`store`]: the [`StateStore`] trait, its backends ([`RedisStore`],
//!   [`EmbeddedStore`]), the key layout ([`keys`]), scheduled turns
//!   ([`store::schedule`]) and the model spend counters.
//! - [`error`], `guest_text` (plugin-written text made safe for logs) and
//!   [`trace`] (the spans meant for traces, the trace context of outbound
//!   requests): used by every layer.
//!
//! # Example
//! ```no_run
//! use agent_host::{Host, PluginConfig, RedisOptions, RedisStore};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::open("redis://127.0.0.1:6379", RedisOptions::default())?;
//! let host = Host::builder().store(store).build()?;
//! let config = PluginConfig::new("chat", "tenant-a")
//!     .with_default_ttl(Some(Duration::from_secs(7 * 24 * 3600)));
//! host.load_plugin_file(config, "chat_memory.wasm").await?;
//! let answer = host.run_turn("chat", "alice", "hello there").await?;
//! println!("{answer}");
//! let session = host.inspect("chat", "alice").await?;
//! println!("{} history items", session.history.len());
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
mod guest;
mod guest_text;
pub mod host;
pub mod ops;
pub mod outbound;
pub mod store;
pub mod trace;
mod turn;

pub use guest::output;
pub use ops::{admin, checkpoints, config_file};
pub use store::keys;

pub use config::{Budget, Limits, Meter, PluginConfig, Price, Pricing, Quota};
pub use config_file::ConfigFile;
pub use error::{CrashCause, Error, StateError, StoreError, TurnError};
pub use host::{
    Host, HostBuilder, HostStats, ModelSpend, PluginInfo, PreparedPlugin, RunOutcome, ScheduleRun,
    Scheduling, SessionSnapshot, TurnAnswer, TurnOptions,
};
pub use ops::inspect::{ComponentReport, inspect_component};
pub use outbound::{
    AllowedOrigin, ModelCall, ModelRequest, Outbound, OutboundError, OutboundEvent, SecretHeader,
};
pub use output::TurnEvent;
pub use store::{
    EmbeddedStore, ModelCount, Periods, RedisOptions, RedisStore, Schedule, ScheduleState, Spender,
    StateStore, Usage,
};
