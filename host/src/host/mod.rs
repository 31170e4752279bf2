//! [`Host`]: loaded plugins, the store, and running turns.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Linker;

mod builder;
pub(crate) mod cores;
pub(crate) mod outcome;
pub(crate) mod reuse;
pub(crate) mod sandbox;
mod scheduler;
mod spend;
mod turns;

pub use crate::ops::admin::SessionSnapshot;
pub use crate::store::keys::DEFAULT_ROOT;
pub use builder::HostBuilder;
pub use scheduler::{RunOutcome, ScheduleRun, Scheduling};
pub use spend::ModelSpend;
pub use turns::{TurnAnswer, TurnOptions};

use self::sandbox::TurnCtx;
use crate::config::PluginConfig;
use crate::error::{Error, TurnError};
use crate::guest::bindings::AgentPluginPre;
use crate::guest::state::StateCtx;
use crate::guest_text::escaped;
use crate::host::outcome::{deadline_error, stopped};
use crate::host::reuse::IdleInstances;
use crate::ops::admin;
use crate::ops::cache;
use crate::ops::checkpoints;
use crate::outbound::{
    Clock, ModelObserver, ModelPolicy, OutboundObserver, TurnOutbound, TurnTrail,
};
use crate::store::keys::Name;
use crate::store::{Page, Quota, StateStore, StoredVersion, Usage};
use crate::turn::Turn;
use crate::turn::prefetch::PrefetchTail;
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

    /// Reads, compiles and loads the plugin at `path` (see [`Host::load_plugin`]).
    pub async fn load_plugin_file(
        &self,
        config: PluginConfig,
        path: impl AsRef<Path>,
    ) -> Result<PluginInfo, Error> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path).await.map_err(|e| Error::Plugin {
            id: config.id.clone(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        self.load_plugin(config, bytes).await
    }

    /// Compiles a plugin component, checks that it fits the `agent-plugin` world,
    /// asks it to describe itself, and makes it available as `config.id` (replacing a
    /// plugin loaded before under that id).
    pub async fn load_plugin(
        &self,
        config: PluginConfig,
        wasm: Vec<u8>,
    ) -> Result<PluginInfo, Error> {
        self.check_config(&config)?;
        let id = config.id.clone();
        let plugin_err = |reason: String| Error::Plugin {
            id: id.clone(),
            reason,
        };
        let engine = self.inner.engine.clone();
        let cache = self.inner.cache.clone();
        let (component, origin, compile_time) =
            tokio::task::spawn_blocking(move || cache::compile(&engine, &wasm, cache.as_ref()))
                .await
                .map_err(|e| plugin_err(format!("compile task failed: {e}")))?
                .map_err(|e| plugin_err(format!("not a valid component: {e}")))?;
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| plugin_err(format!("cannot be linked: {e:#}")))?;
        let pre = AgentPluginPre::new(instance_pre)
            .map_err(|e| plugin_err(format!("does not export the agent-plugin world: {e:#}")))?;
        let from_cache = origin == cache::Origin::Cached;
        self.install(config, pre, from_cache, compile_time).await
    }

    /// Loads the component of the loaded plugin `id` again under `config` (another
    /// id, prefix, limits...), without compiling it, and asks it to describe
    /// itself again. `id` stays loaded unless `config.id` is `id`, which replaces it.
    pub async fn reload_plugin(&self, id: &str, config: PluginConfig) -> Result<PluginInfo, Error> {
        self.check_config(&config)?;
        let loaded = self
            .plugin(id)
            .ok_or_else(|| Error::UnknownPlugin(id.to_string()))?;
        let info = &loaded.info;
        let (from_cache, compile_time) = (info.from_cache, info.compile_time);
        self.install(config, loaded.pre.clone(), from_cache, compile_time)
            .await
    }

    fn check_config(&self, config: &PluginConfig) -> Result<(), Error> {
        config.namespace(&self.inner.root)?;
        if config.limits.memory_bytes > self.inner.max_instance_memory {
            return Err(Error::Config(format!(
                "plugin {}: limits.memory_bytes {} is over the host's max_instance_memory {}",
                config.id, config.limits.memory_bytes, self.inner.max_instance_memory
            )));
        }
        Ok(())
    }

    /// Makes the linked component `pre` available as `config.id`, once it has
    /// described itself.
    async fn install(
        &self,
        config: PluginConfig,
        pre: AgentPluginPre<TurnCtx>,
        from_cache: bool,
        compile_time: Duration,
    ) -> Result<PluginInfo, Error> {
        let ns = config.namespace(&self.inner.root)?;
        let id = config.id.clone();
        let scope = Arc::new(PluginScope {
            config,
            ns,
            prefetch: PrefetchTail::default(),
        });
        let mut info = self
            .describe(&scope, &pre)
            .await
            .map_err(|e| Error::Plugin {
                id: id.clone(),
                reason: format!("describe failed: {e}"),
            })?;
        info.from_cache = from_cache;
        info.compile_time = compile_time;
        let limits = &scope.config.limits;
        let turns = Arc::new(Semaphore::new(limits.max_concurrent_turns as usize));
        let idle = IdleInstances::new(scope.config.instance_reuse, limits.max_concurrent_turns);
        let plugin = Plugin {
            scope,
            pre,
            info,
            turns,
            idle,
        };
        tracing::info!(
            plugin = %id,
            name = %plugin.info.name,
            version = %plugin.info.version,
            from_cache = plugin.info.from_cache,
            compile_ms = compile_time.as_secs_f64() * 1e3,
            "plugin loaded"
        );
        let info = plugin.info.clone();
        self.inner
            .plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(plugin));
        Ok(info)
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

    async fn describe(
        &self,
        scope: &Arc<PluginScope>,
        pre: &AgentPluginPre<TurnCtx>,
    ) -> Result<PluginInfo, TurnError> {
        let deadline = Instant::now() + scope.config.limits.deadline;
        let state = StateCtx::new(Turn::new(scope.clone(), self.inner.store.clone()), None);
        let outbound = self.turn_outbound(scope, deadline, &self.turn_trail(scope, None));
        let (mut store, output) = sandbox::turn_store(&self.inner.engine, outbound, state);
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .agent_state_handler()
                .call_describe(&mut store)
                .await
        };
        let result = tokio::time::timeout_at(deadline.into(), call).await;
        output.log(&scope.config.id);
        sandbox::log_refusals(&store, &scope.config.id);
        match result {
            Ok(Ok(info)) => Ok(PluginInfo {
                name: escaped(&info.name, DESCRIBE_BYTES),
                version: escaped(&info.version, DESCRIBE_BYTES),
                from_cache: false,
                compile_time: Duration::ZERO,
            }),
            Ok(Err(e)) => Err(stopped(scope, &store, &output, e)),
            Err(_) => Err(deadline_error(scope)),
        }
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
