//! What a namespace may keep in the store ([`Quota`]) and what it keeps
//! ([`Usage`]), as the stores count it.

use crate::error::StoreError;

/// What a namespace may keep in the store (`PluginConfig::with_quota`). `None`:
/// no limit on that count.
///
/// `bytes` counts every entry the namespace keeps: each session (its state
/// document, history and kept versions), plugin-wide value (`wasi:keyvalue` keys
/// included), idempotency record and buffered stream, as its payload bytes plus the
/// length of its store key plus [`ENTRY_OVERHEAD`]. An entry stops counting when it
/// is deleted, and when it has expired and the namespace's usage is pruned: every
/// commit that would otherwise go over prunes expired entries first, and
/// [`StateStore::usage`] prunes before it counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Quota {
    /// Live sessions.
    pub sessions: Option<u64>,
    /// Bytes kept, as above.
    pub bytes: Option<u64>,
    /// Pending scheduled turns (running ones included).
    pub schedules: Option<u64>,
}

/// Pending scheduled turns a plugin may have, by default.
pub const DEFAULT_MAX_SCHEDULES: u64 = 10_000;

impl Quota {
    /// No limit on any count.
    pub const UNLIMITED: Quota = Quota {
        sessions: None,
        bytes: None,
        schedules: None,
    };

    /// A quota of `sessions` and `bytes` (`None`: no limit on that count), with the
    /// default limit of pending schedules.
    pub fn new(sessions: Option<u64>, bytes: Option<u64>) -> Self {
        Self {
            sessions,
            bytes,
            schedules: Some(DEFAULT_MAX_SCHEDULES),
        }
    }

    /// The same quota with at most `schedules` pending schedules (`None`: no limit).
    pub fn with_schedules(mut self, schedules: Option<u64>) -> Self {
        self.schedules = schedules;
        self
    }

    /// The error of a commit that would go over the pending schedules.
    pub(crate) fn schedules_exceeded(&self) -> StoreError {
        StoreError::QuotaExceeded(format!(
            "the plugin's quota of {} pending schedules is used up",
            self.schedules.unwrap_or_default()
        ))
    }

    /// The error of a commit that would go over the sessions count.
    pub(crate) fn sessions_exceeded(&self) -> StoreError {
        StoreError::QuotaExceeded(format!(
            "the plugin's quota of {} sessions is used up",
            self.sessions.unwrap_or_default()
        ))
    }

    /// The error of a commit that would go over the bytes count.
    pub(crate) fn bytes_exceeded(&self) -> StoreError {
        StoreError::QuotaExceeded(format!(
            "the plugin's quota of {} bytes is used up",
            self.bytes.unwrap_or_default()
        ))
    }
}

impl Default for Quota {
    /// 100,000 sessions, 1 GiB and 10,000 pending schedules: a plugin cannot fill
    /// a store shared by many tenants unless the operator says so.
    fn default() -> Self {
        Self::new(Some(100_000), Some(1 << 30))
    }
}

/// Bytes counted per stored entry beside its payload and key (the store's own
/// bookkeeping of it).
pub const ENTRY_OVERHEAD: u64 = 64;

/// What a namespace keeps in the store, as its [`Quota`] counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Live sessions.
    pub sessions: u64,
    /// Bytes kept.
    pub bytes: u64,
}
