//! What operators use beside running turns: sessions by namespace, kept versions
//! (roll back, fork), scheduled turns, the config file, what a component imports, and the cache of
//! compiled components. Built on the store and the turn's commit, below `host`.

pub mod admin;
pub(crate) mod cache;
pub mod checkpoints;
pub mod config_file;
pub(crate) mod inspect;
pub mod schedules;
