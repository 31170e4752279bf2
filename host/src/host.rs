//! [`Host`]: loaded plugins, the store, and running turns.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Trap};

use crate::bindings::AgentPluginPre;
use crate::config::PluginConfig;
use crate::error::{Error, TurnError};
use crate::keys::Name;
use crate::sandbox::{self, TurnCtx};
use crate::state::{PluginScope, StateCtx};
use crate::store::{Entry, Page, StateStore};

/// Default root of every key (`{root}:{prefix}:…`).
pub const DEFAULT_ROOT: &str = "agent";

/// Builds a [`Host`].
#[must_use]
pub struct HostBuilder {
    store: Option<Arc<dyn StateStore>>,
    root: String,
}

impl HostBuilder {
    /// The store every plugin's state goes to (required).
    pub fn store(mut self, store: impl StateStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Same as [`HostBuilder::store`], for a store that is already shared.
    pub fn shared_store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The first segment of every key; default [`DEFAULT_ROOT`]. Hosts that share a
    /// Redis but must not share state use different roots.
    pub fn root(mut self, root: impl Into<String>) -> Self {
        self.root = root.into();
        self
    }

    /// Creates the engine and checks the settings.
    pub fn build(self) -> Result<Host, Error> {
        let store = self
            .store
            .ok_or_else(|| Error::Config("no store given to HostBuilder".into()))?;
        // Checked the same way as every prefix.
        crate::keys::Namespace::new(&self.root, "x").map_err(Error::Config)?;
        let engine = sandbox::engine()?;
        let linker = sandbox::linker(&engine)?;
        Ok(Host {
            inner: Arc::new(Inner {
                engine,
                linker,
                store,
                root: self.root,
                plugins: RwLock::default(),
            }),
        })
    }
}

/// Runs agent plugins and keeps their state.
///
/// Cheap to clone; clones share plugins, engine and store. Every turn gets a fresh
/// instance of its plugin, so turns never share guest memory.
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
}

struct Plugin {
    scope: Arc<PluginScope>,
    pre: AgentPluginPre<TurnCtx>,
    info: PluginInfo,
}

/// What a plugin says about itself (`describe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
}

/// A session as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// The state document.
    pub state: Option<Entry>,
    /// The newest history items (up to the plugin's per-call limit), oldest first.
    pub history: Vec<Vec<u8>>,
    /// Time left before the session expires; `None`: never (or no session).
    pub ttl: Option<Duration>,
}

impl Host {
    /// Starts building a host.
    pub fn builder() -> HostBuilder {
        HostBuilder {
            store: None,
            root: DEFAULT_ROOT.into(),
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
        let ns = config.namespace(&self.inner.root)?;
        let id = config.id.clone();
        let plugin_err = |reason: String| Error::Plugin {
            id: id.clone(),
            reason,
        };
        let engine = self.inner.engine.clone();
        let started = Instant::now();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &wasm))
            .await
            .map_err(|e| plugin_err(format!("compile task failed: {e}")))?
            .map_err(|e| plugin_err(format!("not a valid component: {e:#}")))?;
        let compiled_in = started.elapsed();
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| plugin_err(format!("cannot be linked: {e:#}")))?;
        let pre = AgentPluginPre::new(instance_pre)
            .map_err(|e| plugin_err(format!("does not export the agent-plugin world: {e:#}")))?;
        let scope = Arc::new(PluginScope { config, ns });
        let mut plugin = Plugin {
            scope,
            pre,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
            },
        };
        plugin.info = self
            .describe(&plugin)
            .await
            .map_err(|e| plugin_err(format!("describe failed: {e}")))?;
        tracing::info!(
            plugin = %id,
            name = %plugin.info.name,
            version = %plugin.info.version,
            compile_ms = compiled_in.as_millis() as u64,
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

    fn plugin(&self, id: &str) -> Option<Arc<Plugin>> {
        let plugins = self.inner.plugins.read().unwrap_or_else(|p| p.into_inner());
        plugins.get(id).cloned()
    }

    async fn describe(&self, plugin: &Plugin) -> Result<PluginInfo, TurnError> {
        let limits = &plugin.scope.config.limits;
        let deadline = Instant::now() + limits.deadline;
        let state = StateCtx::new(plugin.scope.clone(), self.inner.store.clone());
        let (mut store, output) = sandbox::turn_store(&self.inner.engine, limits, state, deadline);
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance
                .agent_state_handler()
                .call_describe(&mut store)
                .await
        };
        let result = tokio::time::timeout_at(deadline.into(), call).await;
        output.log(&plugin.scope.config.id);
        match result {
            Ok(Ok(info)) => Ok(PluginInfo {
                name: info.name,
                version: info.version,
            }),
            Ok(Err(e)) => Err(stopped(&plugin.scope, &store, &output, e)),
            Err(_) => Err(deadline_error(&plugin.scope)),
        }
    }

    /// Runs one turn: a fresh instance of plugin `plugin_id` handles `input` for
    /// `session`, within the plugin's deadline and memory cap.
    pub async fn run_turn(
        &self,
        plugin_id: &str,
        session: &str,
        input: &str,
    ) -> Result<String, TurnError> {
        let plugin = self
            .plugin(plugin_id)
            .ok_or_else(|| TurnError::UnknownPlugin(plugin_id.to_string()))?;
        Name::session(session).map_err(TurnError::InvalidSession)?;
        let scope = &plugin.scope;
        let limits = &scope.config.limits;
        let span = tracing::info_span!("turn", plugin = %plugin_id, session = %session);
        let _enter = span.enter();
        let started = Instant::now();
        let deadline = started + limits.deadline;

        let state = StateCtx::new(scope.clone(), self.inner.store.clone());
        let (mut store, output) = sandbox::turn_store(&self.inner.engine, limits, state, deadline);
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance
                .agent_state_handler()
                .call_handle(&mut store, session, input)
                .await
        };
        // The epoch stops guest code at the deadline; this stops a turn that is
        // waiting on the store at that moment.
        let result = tokio::time::timeout_at(deadline.into(), call).await;
        output.log(plugin_id);

        let outcome = match result {
            Ok(Ok(Ok(answer))) => Ok(answer),
            Ok(Ok(Err(message))) => Err(match store.data().state.unavailable.clone() {
                Some(reason) => TurnError::StoreUnavailable {
                    plugin: plugin_id.to_string(),
                    reason,
                    message,
                },
                None => TurnError::Plugin {
                    plugin: plugin_id.to_string(),
                    message,
                },
            }),
            Ok(Err(e)) => Err(stopped(scope, &store, &output, e)),
            Err(_) => Err(deadline_error(scope)),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        match &outcome {
            Ok(_) => tracing::debug!(elapsed_us, "turn done"),
            Err(e) => tracing::warn!(elapsed_us, error = %e, "turn failed"),
        }
        outcome
    }

    /// A session's state, recent history and TTL, without running the plugin.
    pub async fn inspect(&self, plugin_id: &str, session: &str) -> Result<SessionSnapshot, Error> {
        let plugin = self
            .plugin(plugin_id)
            .ok_or_else(|| Error::UnknownPlugin(plugin_id.to_string()))?;
        let session = Name::session(session).map_err(Error::Invalid)?;
        let ns = &plugin.scope.ns;
        let store = &self.inner.store;
        let last = plugin.scope.config.limits.max_items_per_call;
        Ok(SessionSnapshot {
            state: store.load(ns, &session, None).await?,
            history: store.items(ns, &session, last, None).await?,
            ttl: store.ttl(ns, &session).await?,
        })
    }

    /// One page of a plugin's live sessions.
    pub async fn list_sessions(
        &self,
        plugin_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, Error> {
        let plugin = self
            .plugin(plugin_id)
            .ok_or_else(|| Error::UnknownPlugin(plugin_id.to_string()))?;
        let limit = limit.clamp(1, plugin.scope.config.limits.max_items_per_call);
        Ok(self
            .inner
            .store
            .list_sessions(&plugin.scope.ns, cursor, limit)
            .await?)
    }

    /// Removes everything of a session; true if anything existed.
    pub async fn clear_session(&self, plugin_id: &str, session: &str) -> Result<bool, Error> {
        let plugin = self
            .plugin(plugin_id)
            .ok_or_else(|| Error::UnknownPlugin(plugin_id.to_string()))?;
        let session = Name::session(session).map_err(Error::Invalid)?;
        Ok(self.inner.store.clear(&plugin.scope.ns, &session).await?)
    }
}

fn deadline_error(scope: &PluginScope) -> TurnError {
    TurnError::Deadline {
        plugin: scope.config.id.clone(),
        limit: scope.config.limits.deadline,
    }
}

/// Why wasmtime stopped the guest: the memory cap, the deadline, or a trap.
fn stopped(
    scope: &PluginScope,
    store: &wasmtime::Store<TurnCtx>,
    output: &sandbox::Output,
    error: wasmtime::Error,
) -> TurnError {
    let plugin = scope.config.id.clone();
    if store.data().limiter.hit {
        return TurnError::MemoryLimit {
            plugin,
            limit: scope.config.limits.memory_bytes,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return deadline_error(scope);
    }
    let mut reason = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    if let Some(line) = output.last_stderr_line() {
        reason = format!("{reason} (last stderr line: {line})");
    }
    TurnError::Trap { plugin, reason }
}
