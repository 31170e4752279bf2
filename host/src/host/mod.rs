//! [`Host`]: loaded plugins, the store, and running turns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Linker;

mod builder;
pub(crate) mod cores;
pub(crate) mod outcome;
mod plugins;
pub(crate) mod reuse;
pub(crate) mod sandbox;
mod scheduler;
mod spend;
mod turns;

pub use crate::ops::admin::SessionSnapshot;
pub use crate::store::keys::DEFAULT_ROOT;
pub use builder::HostBuilder;
pub use plugins::PreparedPlugin;
pub use scheduler::{RunOutcome, ScheduleRun, Scheduling};
pub use spend::ModelSpend;
pub use turns::{TurnAnswer, TurnOptions};

use self::sandbox::TurnCtx;
use crate::error::Error;
use crate::guest::bindings::AgentPluginPre;
use crate::host::reuse::IdleInstances;
use crate::ops::admin;
use crate::ops::cache;
use crate::ops::checkpoints;
use crate::outbound::{
    Clock, ModelObserver, ModelPolicy, OutboundObserver, TurnOutbound, TurnTrail,
};
use crate::store::keys::Name;
use crate::store::{Page, Quota, StateStore, StoredVersion, Usage};
use crate::turn::scope::PluginScope;
use crate::turn::session_locks::SessionLocks;

/// A stream id: 1 to 64 letters, digits, `-` or `_`.
fn check_stream_id(id: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        return Ok(());
    }
    Err(Error::Invalid(crate::StateError::InvalidArgument(
        "a stream id is 1 to 64 letters, digits, '-' or '_'".into(),
    )))
}

/// Most bytes of a plugin's `describe` name or version that the host keeps.
const DESCRIBE_BYTES: usize = 128;

/// Runs agent plugins and keeps their state.
///
/// Cheap to clone; clones share plugins, engine and store. Every turn gets a fresh
/// instance of its plugin, so turns never share guest memory, unless the plugin's
/// config allows reuse ([`PluginConfig::with_instance_reuse`]).
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<TurnCtx>,
    store: Arc<dyn StateStore>,
    root: String,
    plugins: RwLock<HashMap<String, Arc<Plugin>>>,
    serialize_sessions: bool,
    max_attempts: u32,
    max_instance_memory: u64,
    cache: Option<cache::Cache>,
    on_outbound: Option<OutboundObserver>,
    on_model_call: Option<ModelObserver>,
    model_policy: Option<ModelPolicy>,
    clock: Clock,
    pricing: Arc<crate::config::Pricing>,
    locks: SessionLocks,
    /// Admission to the cores for guest code (`cores.rs`).
    cores: cores::Cores,
    /// Outbound connections kept alive between turns.
    connections: Arc<crate::outbound::Connections>,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    turns: AtomicU64,
    attempts: AtomicU64,
    conflicts: AtomicU64,
}

/// Counters of a host since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostStats {
    /// Turns run (each counted once, however many attempts it took).
    pub turns: u64,
    /// Attempts, retries included.
    pub attempts: u64,
    /// Commits refused because the session changed since the turn read it.
    pub conflicts: u64,
    /// Plugin instances alive right now, running or kept for reuse (with instance
    /// slots; 0 without).
    pub instances: u64,
    /// Turns whose guest code is ready to run and waits for a core right now
    /// (see [`HostBuilder::max_queue_delay`]).
    pub waiting_for_core: u64,
    /// How long the last guest to get a core waited for it.
    pub core_delay: Duration,
}

struct Plugin {
    scope: Arc<PluginScope>,
    pre: AgentPluginPre<TurnCtx>,
    info: PluginInfo,
    /// One permit per turn that may run at once (`Limits::max_concurrent_turns`).
    turns: Arc<Semaphore>,
    /// Instances kept between turns (`PluginConfig::instance_reuse`).
    idle: IdleInstances,
}

/// What a plugin says about itself (`describe`), and how it was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// True if its compiled code came from the cache (see
    /// [`HostBuilder::cache_dir`]).
    pub from_cache: bool,
    /// Time spent compiling it or loading it from the cache.
    pub compile_time: Duration,
}

impl Host {
    /// Starts building a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::new()
    }

    /// Counters since the host was built.
    pub fn stats(&self) -> HostStats {
        let c = &self.inner.stats;
        HostStats {
            turns: c.turns.load(Ordering::Relaxed),
            attempts: c.attempts.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            instances: self
                .inner
                .engine
                .pooling_allocator_metrics()
                .map_or(0, |m| m.component_instances()),
            waiting_for_core: u64::from(self.inner.cores.waiting()),
            core_delay: self.inner.cores.delay(),
        }
    }

    /// The store behind the host.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    /// The ids of the loaded plugins.
    pub fn plugins(&self) -> Vec<String> {
        let plugins = self.inner.plugins.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<String> = plugins.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn turn_outbound(
        &self,
        scope: &Arc<PluginScope>,
        deadline: Instant,
        trail: &TurnTrail,
    ) -> TurnOutbound {
        TurnOutbound {
            scope: scope.clone(),
            observer: self.inner.on_outbound.clone(),
            deadline,
            connections: self.inner.connections.clone(),
            spend: trail.spend.clone(),
            journal: trail.journal.clone(),
        }
    }

    fn plugin(&self, id: &str) -> Option<Arc<Plugin>> {
        let plugins = self.inner.plugins.read().unwrap_or_else(|p| p.into_inner());
        plugins.get(id).cloned()
    }

    /// A session's state, recent history and TTL, without running the plugin.
    pub async fn inspect(&self, plugin_id: &str, session: &str) -> Result<SessionSnapshot, Error> {
        let scope = self.scope(plugin_id)?;
        let last = scope.config.limits.max_items_per_call;
        admin::inspect(self.inner.store.as_ref(), &scope.ns, session, last).await
    }

    /// One page of a plugin's live sessions: at most `limit` (at least 1; more than
    /// the plugin's `max_items_per_call` is clamped to it).
    pub async fn list_sessions(
        &self,
        plugin_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, Error> {
        let scope = self.scope(plugin_id)?;
        // As in the WIT: 0 is a mistake, more than a call may return is clamped.
        if limit == 0 {
            return Err(Error::Invalid(crate::StateError::InvalidArgument(
                "limit must be at least 1".into(),
            )));
        }
        let limit = limit.min(scope.config.limits.max_items_per_call);
        admin::list_sessions(self.inner.store.as_ref(), &scope.ns, cursor, limit).await
    }

    /// What the plugin keeps in the store, as its quota counts it, and its quota.
    pub async fn usage(&self, plugin_id: &str) -> Result<(Usage, Quota), Error> {
        let scope = self.scope(plugin_id)?;
        let usage = self.inner.store.usage(&scope.ns).await?;
        Ok((usage, scope.config.quota))
    }

    /// Removes everything of a session; true if anything existed.
    pub async fn clear_session(&self, plugin_id: &str, session: &str) -> Result<bool, Error> {
        let scope = self.scope(plugin_id)?;
        admin::clear_session(self.inner.store.as_ref(), &scope.ns, session).await
    }

    /// The session's current state and its kept versions, newest first (see
    /// [`PluginConfig::with_keep_versions`]).
    pub async fn versions(
        &self,
        plugin_id: &str,
        session: &str,
    ) -> Result<Vec<checkpoints::VersionInfo>, Error> {
        let scope = self.scope(plugin_id)?;
        checkpoints::versions(self.inner.store.as_ref(), &scope.ns, session).await
    }

    /// Version `version` of the session's state, if it is the current one or kept.
    pub async fn load_version(
        &self,
        plugin_id: &str,
        session: &str,
        version: u64,
    ) -> Result<Option<StoredVersion>, Error> {
        let scope = self.scope(plugin_id)?;
        checkpoints::load_version(self.inner.store.as_ref(), &scope.ns, session, version).await
    }

    /// Writes kept version `to`'s document as the session's new state version;
    /// returns its number. Nothing is erased: the replaced document is kept too.
    pub async fn rollback(&self, plugin_id: &str, session: &str, to: u64) -> Result<u64, Error> {
        let scope = self.scope(plugin_id)?;
        let store = self.inner.store.as_ref();
        checkpoints::rollback(store, &scope.ns, &scope.config, session, to).await
    }

    /// Copies version `from_version` of `session`'s state, and its history up to
    /// the moment it was written, into the new session `to`.
    pub async fn fork(
        &self,
        plugin_id: &str,
        session: &str,
        from_version: u64,
        to: &str,
    ) -> Result<checkpoints::Forked, Error> {
        let scope = self.scope(plugin_id)?;
        let store = self.inner.store.as_ref();
        checkpoints::fork(store, &scope.ns, &scope.config, session, from_version, to).await
    }

    /// What plugin `plugin_id` said about itself (`describe`) when it was loaded.
    pub fn plugin_info(&self, plugin_id: &str) -> Option<PluginInfo> {
        self.plugin(plugin_id).map(|p| p.info.clone())
    }

    /// The config plugin `plugin_id` is loaded with.
    pub fn plugin_config(&self, plugin_id: &str) -> Option<crate::PluginConfig> {
        self.plugin(plugin_id).map(|p| p.scope.config.clone())
    }

    /// The wall-clock deadline of plugin `plugin_id`'s turns.
    pub fn plugin_deadline(&self, plugin_id: &str) -> Option<Duration> {
        self.plugin(plugin_id)
            .map(|p| p.scope.config.limits.deadline)
    }

    /// Appends `events` to the buffer of stream `id` (printable ASCII) of a
    /// streamed turn of `session`, kept `ttl` from now, for a client that
    /// reconnects (see `agent-host serve`).
    pub async fn append_stream_events(
        &self,
        plugin_id: &str,
        session: &str,
        id: &str,
        events: Vec<Vec<u8>>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let scope = self.scope(plugin_id)?;
        let session = Name::session(session).map_err(Error::Invalid)?;
        check_stream_id(id)?;
        let store = self.inner.store.as_ref();
        Ok(store
            .append_events(&scope.ns, &session, id, events, ttl)
            .await?)
    }

    /// The buffered events of stream `id` of `session` from number `from` on.
    pub async fn stream_events(
        &self,
        plugin_id: &str,
        session: &str,
        id: &str,
        from: u64,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let scope = self.scope(plugin_id)?;
        let session = Name::session(session).map_err(Error::Invalid)?;
        check_stream_id(id)?;
        let store = self.inner.store.as_ref();
        Ok(store.read_events(&scope.ns, &session, id, from).await?)
    }

    fn scope(&self, plugin_id: &str) -> Result<Arc<PluginScope>, Error> {
        self.plugin(plugin_id)
            .map(|p| p.scope.clone())
            .ok_or_else(|| Error::UnknownPlugin(plugin_id.to_string()))
    }
}
