//! How a turn's run ended, in the caller's terms: why wasmtime stopped the guest
//! (memory, deadline, trap).

use wasmtime::{PoolConcurrencyLimitError, Trap};

use crate::error::TurnError;
use crate::sandbox::{self, TurnCtx};
use crate::state::PluginScope;

pub(crate) fn deadline_error(scope: &PluginScope) -> TurnError {
    TurnError::Deadline {
        plugin: scope.config.id.clone(),
        limit: scope.config.limits.deadline,
    }
}

/// Why wasmtime stopped the guest: the memory cap, the deadline, or a trap.
pub(crate) fn stopped(
    scope: &PluginScope,
    store: &wasmtime::Store<TurnCtx>,
    output: &sandbox::Output,
    error: wasmtime::Error,
) -> TurnError {
    let plugin = scope.config.id.clone();
    if error.is::<PoolConcurrencyLimitError>() {
        return TurnError::Busy { plugin };
    }
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
