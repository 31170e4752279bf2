//! Runs sandboxed WebAssembly agent plugins and gives each one persistent, isolated
//! session state in Redis through the WIT interface `agent-state`.
//!
//! # Layout
//! - [`host`]: [`Host`]: load plugins, run turns, inspect sessions; its `builder`
//!   submodule holds [`HostBuilder`] (store, key root, instance pool, cache), its
//!   `turns` submodule running a turn ([`TurnOptions`], [`TurnAnswer`]).
//! - [`config`]: what a plugin may do ([`PluginConfig`], [`Limits`]).
//! - [`config_file`]: the operator's TOML file ([`ConfigFile`]).
//! - [`store`]: the [`StateStore`] trait and its backends ([`RedisStore`],
//!   [`EmbeddedStore`]).
//! - [`admin`]: sessions by namespace, for operator tools.
//! - [`checkpoints`]: a session's kept state versions: list, read, roll back, fork.
//! - [`keys`]: how namespaces, session ids and keys become store keys.
//! - [`error`]: one error type per audience.
//! - `guest_text`: plugin-written text made safe for logs (escaped, bounded).
//! - [`outbound`]: plugins' HTTP requests: allow-list, secret headers, limits.
//! - `capture`: a plugin's stdout and stderr, bounded, emptied per turn.
//! - `sandbox`: the wasmtime engine, WASI without capabilities, memory and time
//!   limits.
//! - `state`: the host side of `agent-state`, answering the guest.
//! - `keyvalue`: the host side of the standard `wasi:keyvalue` (buckets of
//!   plugin-wide values in the turn).
//! - `turn`: a turn's staged view of its state, committed in one step.
//! - `prefetch`: how much history a session's first read fetches, learned per plugin.
//! - `idempotency`: idempotency keys: a retried turn gets its first answer.
//! - [`output`]: what a plugin emits while it runs, streamed to the caller.
//! - `outcome`: how a turn's run ended (answer, memory, deadline, trap), and what a
//!   crashed plugin's stderr says (its last lines, a panic or an exception).
//! - `reuse`: the instances a plugin with `instance_reuse` keeps between turns.
//! - `session_locks`: turns of one session on one host wait for each other.
//! - `inspect`: what a component imports and exports, without running it.
//! - `bindings`: the code generated from `wit/`.
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

pub mod admin;
mod bindings;
mod cache;
mod capture;
pub mod checkpoints;
pub mod config;
pub mod config_file;
pub mod error;
mod guest_text;
pub mod host;
mod idempotency;
mod inspect;
pub mod keys;
mod keyvalue;
pub mod outbound;
mod outcome;
pub mod output;
mod prefetch;
mod reuse;
mod sandbox;
mod session_locks;
mod state;
pub mod store;
mod turn;

pub use config::{Limits, PluginConfig, Quota};
pub use config_file::ConfigFile;
pub use error::{CrashCause, Error, StateError, StoreError, TurnError};
pub use host::{
    Host, HostBuilder, HostStats, PluginInfo, SessionSnapshot, TurnAnswer, TurnOptions,
};
pub use inspect::{ComponentReport, inspect_component};
pub use outbound::{AllowedOrigin, Outbound, OutboundError, OutboundEvent, SecretHeader};
pub use output::TurnEvent;
pub use store::{EmbeddedStore, RedisOptions, RedisStore, StateStore, Usage};
