//! The sandbox: the wasmtime engine, what one instance may use, and the clock that
//! stops runaway plugins.
//!
//! A plugin gets WASI p2 (a Rust std guest imports it even if it does nothing with
//! it) with no preopened directories, no network, no environment and no arguments;
//! its stdout and stderr are captured (bounded) and written to the host's log. Its
//! memory is capped by [`MemoryLimiter`] and its wall time by epoch interruption.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::error::Error;
use crate::guest::bindings::AgentPlugin;
use crate::guest::capture::CapturePipe;
use crate::guest::keyvalue::{KeyValue, KeyValueData};
use crate::guest::state::StateCtx;
use crate::guest_text::{LOG_FIELD_BYTES, escaped};
use crate::outbound::{OutboundHooks, TurnOutbound};

/// How often the epoch ticks: the granularity of deadlines and of yielding to other
/// turns on the same thread.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances (and tables) reserved per instance slot.
const CORE_PER_SLOT: u32 = 16;

/// How instances are allocated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pool {
    /// Instances that can exist at once (0: no pool, allocate on demand).
    pub(crate) slots: u32,
    /// Largest linear memory of one instance.
    pub(crate) max_memory: u64,
    /// Bytes of a finished instance's memory kept in its slot and reset by
    /// copying (0: only the dirty pages `pagemap_scan` finds, up to 1 MiB).
    pub(crate) keep_resident: u64,
}

/// The engine every plugin of a host is compiled for, with its epoch ticker.
///
/// With a pool, memories, tables and fiber stacks are reserved once and reused
/// (kept resident, reset with `pagemap_scan` where the kernel has it), which
/// removes the mmap/munmap of every instantiation and every async call.
///
/// `pagemap_scan` keeps at most 32 runs of dirty pages resident: a Python or
/// JavaScript turn dirties pages all over a heap of 10-14 MiB, so the rest went
/// back to the kernel and faulted in again on the next turn, each fault a
/// copy-on-write with a TLB shootdown on every core. With `keep_resident` the
/// first that many bytes of memory stay resident and are reset by copying from
/// the component's image instead: no faults, at the cost of a copy per turn and
/// of resident memory in every slot used.
pub(crate) fn engine(pool: Pool) -> Result<Engine, Error> {
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    // Copy-on-write memory images for every plugin whose initial memory fits an
    // instance: a Python or JavaScript component starts with tens of MB of
    // pre-initialised heap, which wasmtime would otherwise copy in at every
    // instantiation (its default covers 16 MiB of dense image).
    config.memory_guaranteed_dense_image_size(pool.max_memory);
    if pool.slots > 0 {
        let n = pool.slots;
        let mut pooling = PoolingAllocationConfig::new();
        // A slot is one plugin instance whatever its language: a Python component
        // instantiates 14 core modules (componentize-py 0.25: its interpreter,
        // libc, the WASI adapter and shims), JavaScript 4, Rust 1-2; with 4 core
        // instances per slot a Python plugin got 73 of 256 slots (found by a
        // user's trial). Unused entries cost address space only.
        pooling
            .total_component_instances(n)
            .total_core_instances(n.saturating_mul(CORE_PER_SLOT))
            .total_memories(n.saturating_mul(4))
            .total_tables(n.saturating_mul(CORE_PER_SLOT))
            .total_stacks(n)
            .max_memory_size(usize::try_from(pool.max_memory).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(match pool.keep_resident {
                0 => 1 << 20,
                bytes => usize::try_from(bytes).unwrap_or(usize::MAX),
            })
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(64 << 10)
            .pagemap_scan(match pool.keep_resident {
                0 => Enabled::Auto,
                _ => Enabled::No,
            });
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    let engine = Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))?;
    spawn_epoch_ticker(&engine)?;
    Ok(engine)
}

/// Ticks the engine's epoch until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) -> Result<(), Error> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("agent-host-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|e| Error::Engine(format!("cannot start the epoch thread: {e}")))?;
    Ok(())
}

/// A linker with WASI p2, `wasi:http` (outbound requests, see `outbound`),
/// `agent-state` and `wasi:keyvalue` (see `keyvalue`).
pub(crate) fn linker(engine: &Engine) -> Result<Linker<TurnCtx>, Error> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| Error::Engine(format!("linking WASI: {e}")))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| Error::Engine(format!("linking wasi:http: {e}")))?;
    AgentPlugin::add_to_linker::<TurnCtx, HasSelf<StateCtx>>(&mut linker, |t| &mut t.state)
        .map_err(|e| Error::Engine(format!("linking agent-state: {e}")))?;
    crate::guest::keyvalue::generated::Imports::add_to_linker::<TurnCtx, KeyValueData>(
        &mut linker,
        |t| KeyValue {
            table: &mut t.table,
            state: &mut t.state,
        },
    )
    .map_err(|e| Error::Engine(format!("linking wasi:keyvalue: {e}")))?;
    Ok(linker)
}

/// Everything one turn's instance owns.
pub(crate) struct TurnCtx {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) state: StateCtx,
    /// Set when the guest yields at an epoch tick only to let others run (it is
    /// computing, not waiting): see `cores.rs`.
    pub(crate) computing: Arc<AtomicBool>,
}

impl WasiHttpView for TurnCtx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl WasiView for TurnCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The captured stdout and stderr of one turn.
pub(crate) struct Output {
    pub(crate) stdout: CapturePipe,
    pub(crate) stderr: CapturePipe,
}

/// Lines of each stream written to the log per run; the rest are only counted.
const LOG_LINES: usize = 20;

impl Output {
    /// Writes what the plugin printed to the host's log: the first lines of each
    /// stream, escaped and bounded, then how many more there were.
    pub(crate) fn log(&self, plugin: &str) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            let text = String::from_utf8_lossy(&bytes);
            let mut lines = text.lines();
            for line in lines.by_ref().take(LOG_LINES) {
                tracing::info!(plugin, stream, "{}", escaped(line, LOG_FIELD_BYTES));
            }
            let more = lines.count();
            if more > 0 {
                tracing::info!(
                    plugin,
                    stream,
                    more,
                    "more lines of plugin output not logged"
                );
            }
        }
    }
}

/// Logs, once per run, what the host refused the plugin (refusals are not logged
/// one by one: a plugin can be refused millions of times in one turn).
pub(crate) fn log_refusals(store: &Store<TurnCtx>, plugin: &str) {
    let ctx = store.data();
    let (memory, state) = (ctx.limiter.refused, ctx.state.refused_calls);
    if memory == 0 && state == 0 {
        return;
    }
    let first = ctx.state.first_refusal.as_deref().unwrap_or("");
    tracing::warn!(
        plugin,
        memory_growths = memory,
        state_calls = state,
        first_state_refusal = %escaped(first, LOG_FIELD_BYTES),
        "the plugin was refused {} times during the run",
        memory + state
    );
}

/// A store for one turn, with its limits and deadline set.
pub(crate) fn turn_store(
    engine: &Engine,
    outbound: TurnOutbound,
    state: StateCtx,
) -> (Store<TurnCtx>, Output) {
    let config = &outbound.scope.config;
    let limits = &config.limits;
    let deadline = outbound.deadline;
    let limiter = MemoryLimiter::new(limits.memory_bytes);
    let output = Output {
        stdout: CapturePipe::new(limits.max_stdio_bytes),
        stderr: CapturePipe::new(limits.max_stdio_bytes),
    };
    // No dirs, no args, no sockets: WasiCtxBuilder grants none by default. The env
    // is the plugin's configured variables only.
    let wasi = WasiCtxBuilder::new()
        .stdout(output.stdout.clone())
        .stderr(output.stderr.clone())
        .envs(&config.env)
        .build();
    let ctx = TurnCtx {
        wasi,
        http: WasiHttpCtx::new(),
        hooks: OutboundHooks::new(outbound),
        table: ResourceTable::new(),
        limiter,
        state,
        computing: Arc::default(),
    };
    let mut store = Store::new(engine, ctx);
    store.limiter(|t| &mut t.limiter);
    set_deadline(&mut store, deadline);
    (store, output)
}

/// Makes a kept instance's `store` ready for another turn (`instance_reuse`): that
/// turn's outbound context, state and deadline, no refusals counted, no output.
pub(crate) fn next_turn(
    store: &mut Store<TurnCtx>,
    output: &Output,
    outbound: TurnOutbound,
    state: StateCtx,
) {
    let deadline = outbound.deadline;
    let ctx = store.data_mut();
    ctx.hooks = OutboundHooks::new(outbound);
    ctx.state = state;
    ctx.limiter.refused = 0;
    output.stdout.clear();
    output.stderr.clear();
    set_deadline(store, deadline);
}

/// Stops the guest at `deadline`, yielding to other turns at every epoch tick.
fn set_deadline(store: &mut Store<TurnCtx>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |cx| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            cx.data().computing.store(true, Ordering::Relaxed);
            // Let other turns on this thread run, then look again next tick. Tokio's
            // own yield also lets its I/O driver run, which a plain wake does not.
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
}

/// Caps an instance's linear memory and counts the growths it refused, so the
/// host can say "memory limit" instead of the guest's `unreachable`.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) refused: u64,
}

impl MemoryLimiter {
    fn new(limit: u64) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            refused: 0,
        }
    }
}

/// Most table elements an instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            // Logged once at the end of the run (`log_refusals`).
            self.refused += 1;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
