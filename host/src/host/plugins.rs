//! Loading plugins: compiling a component (or taking it from the cache), checking
//! that it fits the `agent-plugin` world, asking it to describe itself, and making
//! it available under its id; replacing and removing loaded plugins.
//!
//! Loading is two steps, so that a caller can load several plugins all or
//! nothing (`agent-host serve`'s reload): [`Host::prepare_plugin`] does everything
//! that can fail and changes nothing, [`Host::install_plugins`] swaps prepared
//! plugins in (and removed ones out) at once. A turn holds the plugin it started
//! on, so a plugin replaced or removed while its turns run lets them finish on
//! the version they started with; new turns get the new one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::sandbox::{self, TurnCtx};
use super::{DESCRIBE_BYTES, Host, Plugin, PluginInfo};
use crate::config::PluginConfig;
use crate::error::{Error, TurnError};
use crate::guest::bindings::AgentPluginPre;
use crate::guest::state::StateCtx;
use crate::guest_text::escaped;
use crate::host::outcome::{deadline_error, stopped};
use crate::host::reuse::IdleInstances;
use crate::ops::cache;
use crate::turn::Turn;
use crate::turn::prefetch::PrefetchTail;
use crate::turn::scope::PluginScope;

/// A plugin compiled, linked and described, not yet taking turns (see
/// [`Host::install_plugins`]).
pub struct PreparedPlugin {
    plugin: Plugin,
}

impl PreparedPlugin {
    /// The id it will be loaded as.
    pub fn id(&self) -> &str {
        &self.plugin.scope.config.id
    }

    /// What it said about itself, and how it was compiled.
    pub fn info(&self) -> &PluginInfo {
        &self.plugin.info
    }
}

impl std::fmt::Debug for PreparedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedPlugin")
            .field("id", &self.id())
            .field("info", self.info())
            .finish()
    }
}

impl Host {
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
        let prepared = self.prepare_plugin(config, wasm).await?;
        let info = prepared.info().clone();
        self.install_plugins(vec![prepared], &[]);
        Ok(info)
    }

    /// Loads the component of the loaded plugin `id` again under `config` (another
    /// id, prefix, limits...), without compiling it, and asks it to describe
    /// itself again. `id` stays loaded unless `config.id` is `id`, which replaces it.
    pub async fn reload_plugin(&self, id: &str, config: PluginConfig) -> Result<PluginInfo, Error> {
        let prepared = self.prepare_reconfigured(id, config).await?;
        let info = prepared.info().clone();
        self.install_plugins(vec![prepared], &[]);
        Ok(info)
    }

    /// Everything [`Host::load_plugin`] does but making it available: compiles
    /// (or takes from the cache), links and describes it. Nothing changes for
    /// the plugins loaded, whatever the outcome.
    pub async fn prepare_plugin(
        &self,
        config: PluginConfig,
        wasm: Vec<u8>,
    ) -> Result<PreparedPlugin, Error> {
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
        self.prepare(config, pre, from_cache, compile_time).await
    }

    /// The component of the loaded plugin `id` under `config`, described again,
    /// without compiling (see [`Host::reload_plugin`]). Nothing changes for the
    /// plugins loaded.
    pub async fn prepare_reconfigured(
        &self,
        id: &str,
        config: PluginConfig,
    ) -> Result<PreparedPlugin, Error> {
        self.check_config(&config)?;
        let loaded = self
            .plugin(id)
            .ok_or_else(|| Error::UnknownPlugin(id.to_string()))?;
        let info = &loaded.info;
        let (from_cache, compile_time) = (info.from_cache, info.compile_time);
        self.prepare(config, loaded.pre.clone(), from_cache, compile_time)
            .await
    }

    /// Makes the `prepared` plugins available (each replacing one loaded under
    /// its id) and the plugins `remove` unavailable, at once: no turn sees some
    /// of the change and not the rest. Turns running keep the version they
    /// started on. Returns the ids of `remove` that were loaded.
    pub fn install_plugins(&self, prepared: Vec<PreparedPlugin>, remove: &[&str]) -> Vec<String> {
        let mut plugins = self
            .inner
            .plugins
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let removed: Vec<String> = remove
            .iter()
            .filter(|id| plugins.remove(**id).is_some())
            .map(|id| id.to_string())
            .collect();
        for PreparedPlugin { plugin } in prepared {
            let info = &plugin.info;
            tracing::info!(
                plugin = %plugin.scope.config.id,
                name = %info.name,
                version = %info.version,
                from_cache = info.from_cache,
                compile_ms = info.compile_time.as_secs_f64() * 1e3,
                "plugin loaded"
            );
            plugins.insert(plugin.scope.config.id.clone(), Arc::new(plugin));
        }
        for id in &removed {
            tracing::info!(plugin = %id, "plugin removed: its turns in flight finish");
        }
        removed
    }

    /// Stops plugin `id` taking turns (those in flight finish); true if it was
    /// loaded.
    pub fn unload_plugin(&self, id: &str) -> bool {
        !self.install_plugins(Vec::new(), &[id]).is_empty()
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

    /// The linked component `pre` as plugin `config.id`, once it has described
    /// itself.
    async fn prepare(
        &self,
        config: PluginConfig,
        pre: AgentPluginPre<TurnCtx>,
        from_cache: bool,
        compile_time: Duration,
    ) -> Result<PreparedPlugin, Error> {
        let ns = config.namespace(&self.inner.root)?;
        let id = config.id.clone();
        let scope = Arc::new(PluginScope {
            config,
            ns,
            prefetch: PrefetchTail::default(),
        });
        memory_images(&id, pre.instance_pre().component()).await;
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
        Ok(PreparedPlugin { plugin })
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
}

/// How many times a component's memory images are tried before its instances are
/// left to make them.
const MEMORY_IMAGE_ATTEMPTS: u32 = 5;

/// Makes the copy-on-write images of a component's memories before its first
/// instance, trying again when one cannot be made. On Linux each is a sealed
/// memfd, and the kernel refuses the seal (EBUSY) while something else holds a
/// page of it for a moment (seen once in a full test run on this machine, whose
/// kernel samples pages for DAMON: `cannot add seals to the memfd`, and the
/// plugin failed to load). Should every try fail, each instantiation tries again.
async fn memory_images(id: &str, component: &wasmtime::component::Component) {
    for attempt in 1..=MEMORY_IMAGE_ATTEMPTS {
        match component.initialize_copy_on_write_image() {
            Ok(()) => return,
            Err(e) if attempt < MEMORY_IMAGE_ATTEMPTS => {
                tracing::debug!(plugin = id, attempt, error = %format!("{e:#}"), "memory image not made; trying again");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => tracing::warn!(
                plugin = id,
                error = %format!("{e:#}"),
                "the plugin's memory images could not be made; each instance tries again"
            ),
        }
    }
}
