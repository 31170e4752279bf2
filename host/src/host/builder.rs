//! [`HostBuilder`]: the settings a [`Host`] is built with (store, key root, instance
//! pool, cache, retries), and the build that creates its engine.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use super::cores::Cores;
use super::{Counters, Host, Inner};
use crate::config::Pricing;
use crate::error::Error;
use crate::host::sandbox;
use crate::ops::config_file::ConfigFile;
use crate::outbound::{
    Clock, ModelCall, ModelObserver, ModelPolicy, ModelRequest, OutboundEvent, OutboundObserver,
};
use crate::store::StateStore;
use crate::store::keys::DEFAULT_ROOT;
use crate::turn::session_locks::SessionLocks;

/// Builds a [`Host`].
#[must_use]
pub struct HostBuilder {
    store: Option<Arc<dyn StateStore>>,
    root: String,
    serialize_sessions: bool,
    max_attempts: u32,
    pool: sandbox::Pool,
    cache_dir: Option<PathBuf>,
    cache_max: u64,
    on_outbound: Option<OutboundObserver>,
    on_model_call: Option<ModelObserver>,
    model_policy: Option<ModelPolicy>,
    clock: Clock,
    pricing: Pricing,
    running: u32,
    max_queue_delay: Duration,
}

/// How long guest code may wait for a core before new turns are refused.
const DEFAULT_MAX_QUEUE_DELAY: Duration = Duration::from_millis(100);

impl HostBuilder {
    pub(super) fn new() -> Self {
        Self {
            store: None,
            root: DEFAULT_ROOT.into(),
            serialize_sessions: true,
            max_attempts: 8,
            pool: sandbox::Pool {
                slots: 256,
                max_memory: 256 << 20,
                keep_resident: 0,
            },
            cache_dir: None,
            cache_max: crate::ops::cache::DEFAULT_MAX_BYTES,
            on_outbound: None,
            on_model_call: None,
            model_policy: None,
            clock: Arc::new(SystemTime::now),
            pricing: Pricing::default(),
            running: cores(),
            max_queue_delay: DEFAULT_MAX_QUEUE_DELAY,
        }
    }

    /// How many turns run guest code at once (default: one per core the process
    /// may use). Turns waiting on their model or the store need no core and are
    /// not counted: this bounds the CPU work in flight, not the turns.
    pub fn cores(mut self, cores: u32) -> Self {
        self.running = cores.max(1);
        self
    }

    /// How long guest code may wait in line for a core before a new turn is
    /// refused with [`TurnError::Overloaded`](crate::TurnError::Overloaded) (HTTP
    /// 503 `busy`), so that past what the CPU can carry callers learn it at once
    /// and the turns admitted keep their latency. Default 100 ms; zero never
    /// refuses.
    pub fn max_queue_delay(mut self, delay: Duration) -> Self {
        self.max_queue_delay = delay;
        self
    }

    /// Calls `observer` once per outbound HTTP request of any plugin (for
    /// metrics); it must be quick, it runs on the request's task.
    pub fn on_outbound(
        mut self,
        observer: impl Fn(&OutboundEvent) + Send + Sync + 'static,
    ) -> Self {
        self.on_outbound = Some(Arc::new(observer));
        self
    }

    /// Calls `observer` once per metered model call of any plugin (for metrics,
    /// or an embedder's own spend policy); it must be quick, it runs on the
    /// request's task. Its tokens are counted in the store too.
    pub fn on_model_call(mut self, observer: impl Fn(&ModelCall) + Send + Sync + 'static) -> Self {
        self.on_model_call = Some(Arc::new(observer));
        self
    }

    /// An embedder's own spend policy, asked before each metered request (after
    /// the budgets): `Err(why)` refuses it as a spent budget does (the plugin gets
    /// 402 `model_budget_spent` with `why`, and nothing leaves the host). It must
    /// be quick: it runs on the request's task. With [`HostBuilder::on_model_call`]
    /// (which sees every call's tokens) it can hold any budget the embedder keeps.
    pub fn model_policy(
        mut self,
        policy: impl Fn(&ModelRequest) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.model_policy = Some(Arc::new(policy));
        self
    }

    /// The clock model spend is counted by (UTC days and months); default the
    /// system's. For tests that move the day on.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// What model tokens cost: each metered call is priced when it is made, its
    /// cost counted with its tokens, and budgets may be set in US dollars
    /// ([`Budget::with_usd`](crate::Budget::with_usd)). Default: no prices (cost 0).
    pub fn pricing(mut self, pricing: Pricing) -> Self {
        self.pricing = pricing;
        self
    }

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

    /// Whether turns of one session on this host wait for each other (default: yes).
    /// Either way, concurrent turns never overwrite each other: a turn whose commit
    /// finds the session changed since it read it is run again. Waiting makes that
    /// rare; without it, concurrent turns on a hot session mostly retry.
    pub fn serialize_sessions(mut self, on: bool) -> Self {
        self.serialize_sessions = on;
        self
    }

    /// How many times a turn is run before a conflict is reported (default 8).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How many plugin instances can run at once (default 256). Their memories,
    /// tables and stacks are reserved up front (virtual memory only) and reused,
    /// which makes a turn much cheaper; a turn beyond the limit fails with
    /// [`TurnError::Busy`](crate::TurnError::Busy). 0 allocates every instance on demand instead.
    pub fn instance_slots(mut self, slots: u32) -> Self {
        self.pool.slots = slots;
        self
    }

    /// The largest memory limit a plugin may be given (default 256 MiB); with
    /// instance slots, each slot reserves this much address space.
    pub fn max_instance_memory(mut self, bytes: u64) -> Self {
        self.pool.max_memory = bytes;
        self
    }

    /// With instance slots, how much of a finished instance's memory stays in its
    /// slot, reset by copying from the component's image rather than given back
    /// to the kernel (default 0: only the pages the kernel reports dirty, up to
    /// 1 MiB).
    ///
    /// Set it to the plugins' memory size (e.g. 32 MiB) on a host that runs
    /// Python or JavaScript plugins: their turns write pages all over a heap of
    /// 10-14 MiB, and with this the next turn starts without page faults
    /// (Python 1.5x the turns per second at 1 turn at a time, 2.5x at 16;
    /// BENCHMARKS.md). It costs a copy of up to that many bytes per turn for
    /// every plugin (Rust plugins lose some throughput) and keeps that much
    /// memory resident in every slot that has been used. Every turn still gets
    /// a fresh instance: the memory is reset to the component's initial image.
    pub fn keep_resident(mut self, bytes: u64) -> Self {
        self.pool.keep_resident = bytes;
        self
    }

    /// A directory where compiled plugins are kept, so the next load of the same
    /// component on the same host version skips compilation (default: none).
    /// Give it to the host alone: artifacts in it are trusted as compiled code.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The most bytes of compiled plugins [`HostBuilder::cache_dir`] keeps
    /// (default 512 MiB). Past it, the artifacts used least recently are removed
    /// (each load from the cache counts as a use); the one just compiled or loaded
    /// always stays.
    pub fn cache_max(mut self, bytes: u64) -> Self {
        self.cache_max = bytes;
        self
    }

    /// Creates the engine and checks the settings.
    pub fn build(self) -> Result<Host, Error> {
        let store = self
            .store
            .ok_or_else(|| Error::Config("no store given to HostBuilder".into()))?;
        // Checked the same way as every prefix.
        crate::store::keys::Namespace::new(&self.root, "x").map_err(Error::Config)?;
        let engine = sandbox::engine(self.pool)?;
        let linker = sandbox::linker(&engine)?;
        Ok(Host {
            inner: Arc::new(Inner {
                engine,
                linker,
                store,
                root: self.root,
                plugins: RwLock::default(),
                serialize_sessions: self.serialize_sessions,
                max_attempts: self.max_attempts,
                max_instance_memory: self.pool.max_memory,
                cache: self.cache_dir.map(|dir| crate::ops::cache::Cache {
                    dir,
                    max_bytes: self.cache_max,
                }),
                on_outbound: self.on_outbound,
                on_model_call: self.on_model_call,
                model_policy: self.model_policy,
                clock: self.clock,
                pricing: Arc::new(self.pricing),
                locks: SessionLocks::default(),
                cores: Cores::new(self.running, self.max_queue_delay),
                connections: Arc::default(),
                stats: Counters::default(),
            }),
        })
    }
}

impl HostBuilder {
    /// A builder with the settings of an operator's config file (key root,
    /// instance slots, resident memory, compiled-artifact cache) and `store`.
    pub fn from_config_file(file: &ConfigFile, store: Arc<dyn StateStore>) -> Self {
        let mut builder = Self::new()
            .shared_store(store)
            .root(file.store.root.clone())
            .instance_slots(file.server.instance_slots)
            .keep_resident(file.server.keep_resident.as_u64())
            .cache_max(file.server.cache_max.as_u64());
        if let Some(dir) = &file.server.cache_dir {
            builder = builder.cache_dir(dir.clone());
        }
        builder = builder.pricing(file.pricing());
        if let Some(delay) = file.server.max_queue_delay {
            builder = builder.max_queue_delay(delay);
        }
        builder
    }
}

/// The cores this process may use.
fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}
