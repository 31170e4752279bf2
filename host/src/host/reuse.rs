//! [`IdleInstances`]: the instances a plugin with `instance_reuse` keeps between
//! turns. A turn takes one (or instantiates a fresh one), so an instance never
//! serves two turns at once; it comes back only after a turn that committed, and
//! is dropped after its last allowed turn or when enough are idle already.

use std::sync::{Mutex, MutexGuard};

use wasmtime::Store;

use crate::guest::bindings::AgentPlugin;
use crate::host::sandbox::{Output, TurnCtx};

/// An instance between two turns, with its store and captured output.
pub(crate) struct Kept {
    pub(crate) store: Store<TurnCtx>,
    pub(crate) instance: AgentPlugin,
    pub(crate) output: Output,
    /// Turns it has served.
    pub(crate) turns: u32,
}

pub(crate) struct IdleInstances {
    max_turns: u32,
    max_idle: usize,
    idle: Mutex<Vec<Kept>>,
}

impl IdleInstances {
    /// Instances that serve up to `max_turns` turns (0 and 1: none are kept), at
    /// most `max_idle` of them idle.
    pub(crate) fn new(max_turns: u32, max_idle: u32) -> Self {
        Self {
            max_turns,
            max_idle: max_idle as usize,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Whether instances are kept at all.
    pub(crate) fn enabled(&self) -> bool {
        self.max_turns > 1
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Kept>> {
        // A panic while the lock is held cannot leave the list half-changed.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle instance (its memory is the likeliest to be
    /// in the CPU's caches), if any.
    pub(crate) fn take(&self) -> Option<Kept> {
        self.idle().pop()
    }

    /// Keeps `kept` for a later turn, unless it has served its turns or enough
    /// are idle.
    pub(crate) fn give_back(&self, kept: Kept) {
        if kept.turns >= self.max_turns {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push(kept);
        }
    }
}
