//! The storage behind `agent-state`: the [`StateStore`] trait and its backends.
//!
//! The host validates everything that comes from the guest (ids, sizes, counts) and
//! resolves defaults (TTLs) before it calls a store, so a store sees only
//! [`Namespace`]s, validated [`Name`]s and concrete [`Expiry`]s. A store's job is to
//! keep one session's keys consistent (state, history and expiry change together)
//! and to answer within a bounded time.

pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::keys::{Name, Namespace};

pub use self::redis::{RedisOptions, RedisStore};

/// A session's state document and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The bytes the plugin saved.
    pub value: Vec<u8>,
    /// 1 after the first save, +1 on every save.
    pub version: u64,
}

/// One page of a plugin's session ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Session ids in byte order.
    pub sessions: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub cursor: Option<String>,
}

/// When a session or value expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Never.
    Never,
    /// After this long from the write.
    After(Duration),
}

impl Expiry {
    /// `Never` for `None`.
    pub fn from_ttl(ttl: Option<Duration>) -> Self {
        ttl.map_or(Self::Never, Self::After)
    }
}

/// Storage for the state of many plugins, each in its own [`Namespace`].
///
/// ## Behavior
/// - A session is its state document, its history, and its index entry; they expire
///   together. Every write to a session (`save`, `append`, `touch`) sets the expiry of
///   all of them to the given [`Expiry`]. `pop` and `delete` keep it.
/// - Reads given a `refresh` extend a session that already expires to at least
///   `refresh` from now (sliding expiry); they never make a non-expiring session
///   expire.
/// - Methods return [`StoreError::Unavailable`] within a bounded time when the
///   backend cannot be reached, and work again once it is back.
/// - Nothing here sees another namespace's keys.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The session's state document.
    async fn load(
        &self,
        ns: &Namespace,
        session: &Name,
        refresh: Option<Duration>,
    ) -> Result<Option<Entry>, StoreError>;

    /// Replaces the state document; returns the new version. With `if_version`,
    /// writes only if the current version (0 when there is none) matches, and
    /// otherwise returns [`StoreError::Conflict`] and writes nothing.
    async fn save(
        &self,
        ns: &Namespace,
        session: &Name,
        value: &[u8],
        expiry: Expiry,
        if_version: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// Deletes the state document; true if it existed.
    async fn delete(&self, ns: &Namespace, session: &Name) -> Result<bool, StoreError>;

    /// Appends to the history; returns the new length. If the history would get
    /// longer than `max_len`, returns [`StoreError::QuotaExceeded`] and writes
    /// nothing.
    async fn append(
        &self,
        ns: &Namespace,
        session: &Name,
        items: &[Vec<u8>],
        expiry: Expiry,
        max_len: u64,
    ) -> Result<u64, StoreError>;

    /// The last `last` history items, oldest first.
    async fn items(
        &self,
        ns: &Namespace,
        session: &Name,
        last: u32,
        refresh: Option<Duration>,
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Removes and returns the newest history item.
    async fn pop(&self, ns: &Namespace, session: &Name) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets the session's expiry; false if the session does not exist.
    async fn touch(
        &self,
        ns: &Namespace,
        session: &Name,
        expiry: Expiry,
    ) -> Result<bool, StoreError>;

    /// Time left before the session expires; `None` if it never does or does not
    /// exist.
    async fn ttl(&self, ns: &Namespace, session: &Name) -> Result<Option<Duration>, StoreError>;

    /// Removes the whole session; true if anything of it existed.
    async fn clear(&self, ns: &Namespace, session: &Name) -> Result<bool, StoreError>;

    /// Up to `limit` live sessions after `cursor` (exclusive), in byte order.
    async fn list_sessions(
        &self,
        ns: &Namespace,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, StoreError>;

    /// A plugin-wide value.
    async fn get(&self, ns: &Namespace, key: &Name) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets a plugin-wide value.
    async fn set(
        &self,
        ns: &Namespace,
        key: &Name,
        value: &[u8],
        expiry: Expiry,
    ) -> Result<(), StoreError>;

    /// Removes a plugin-wide value; true if it existed.
    async fn remove(&self, ns: &Namespace, key: &Name) -> Result<bool, StoreError>;

    /// Adds `delta` to an integer value (0 when absent), keeping its expiry.
    async fn increment(&self, ns: &Namespace, key: &Name, delta: i64) -> Result<i64, StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
