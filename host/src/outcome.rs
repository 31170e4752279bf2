//! How a turn's run ended, in the caller's terms: why wasmtime stopped the guest
//! (memory, deadline, trap).

use wasmtime::{PoolConcurrencyLimitError, Trap};

use crate::error::TurnError;
use crate::guest_text::{LOG_FIELD_BYTES, escaped};
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
    // The deadline first: a plugin refused memory that then ran out of time was
    // stopped by the clock.
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return deadline_error(scope);
    }
    if store.data().limiter.refused > 0 {
        return TurnError::MemoryLimit {
            plugin,
            limit: scope.config.limits.memory_bytes,
        };
    }
    // A trap's text can hold the guest's own function names (its name section).
    let reason = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => escaped(&format!("{error:#}"), LOG_FIELD_BYTES),
    };
    TurnError::Trap {
        plugin,
        reason,
        stderr: output.stderr_tail(),
    }
}
