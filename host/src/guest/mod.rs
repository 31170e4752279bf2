//! What a plugin sees and calls: the WIT bindings, the host side of `agent-state`
//! and of `wasi:keyvalue`, what a plugin emits while it runs, the turns it
//! schedules, and its stdio.
//! Everything here answers the guest from one turn's staged view (`turn`).

pub(crate) mod bindings;
pub(crate) mod capture;
pub(crate) mod keyvalue;
pub mod output;
pub(crate) mod schedule;
pub(crate) mod state;
