//! The host side of the WIT interface `agent-state`: checks every argument from the
//! guest, applies the plugin's policy (TTLs, limits) and calls the store.

use std::sync::Arc;
use std::time::Duration;

use crate::bindings::agent_state::{self, Entry, Error as WitError, Page, SaveOptions};
use crate::config::PluginConfig;
use crate::error::{StateError, StoreError};
use crate::keys::{Name, Namespace, check_name};
use crate::store::{Expiry, StateStore};

/// What a plugin's state calls need: who the plugin is and where its state lives.
pub(crate) struct PluginScope {
    pub(crate) config: PluginConfig,
    pub(crate) ns: Namespace,
}

/// The `agent-state` context of one turn.
pub(crate) struct StateCtx {
    scope: Arc<PluginScope>,
    store: Arc<dyn StateStore>,
    /// The last "store unavailable" a call of this turn got, to tell the caller why
    /// a plugin failed.
    pub(crate) unavailable: Option<String>,
}

impl StateCtx {
    pub(crate) fn new(scope: Arc<PluginScope>, store: Arc<dyn StateStore>) -> Self {
        Self {
            scope,
            store,
            unavailable: None,
        }
    }

    fn ns(&self) -> &Namespace {
        &self.scope.ns
    }

    fn config(&self) -> &PluginConfig {
        &self.scope.config
    }

    fn check<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StateError> {
        if let Err(StoreError::Unavailable(reason)) = &result {
            self.unavailable = Some(reason.clone());
        }
        Ok(result?)
    }

    fn check_size(&self, size: usize) -> Result<(), StateError> {
        let limit = self.config().limits.max_value_bytes;
        let size = size as u64;
        if size > limit {
            tracing::warn!(plugin = %self.config().id, size, limit, "value over the size limit");
            return Err(StateError::TooLarge { size, limit });
        }
        Ok(())
    }

    /// The TTL a guest asked for; 0 is refused rather than read as "now".
    fn ttl(seconds: Option<u32>) -> Result<Option<Duration>, StateError> {
        match seconds {
            Some(0) => Err(StateError::InvalidArgument(
                "ttl-seconds must be at least 1".into(),
            )),
            s => Ok(s.map(|s| Duration::from_secs(u64::from(s)))),
        }
    }

    fn default_expiry(&self) -> Expiry {
        Expiry::from_ttl(self.config().default_ttl)
    }

    fn refresh(&self) -> Option<Duration> {
        let config = self.config();
        config.default_ttl.filter(|_| config.sliding_ttl)
    }

    fn per_call_limit(&self, asked: u32, what: &str) -> Result<u32, StateError> {
        if asked == 0 {
            return Err(StateError::InvalidArgument(format!(
                "{what} must be at least 1"
            )));
        }
        Ok(asked.min(self.config().limits.max_items_per_call))
    }
}

impl agent_state::Host for StateCtx {
    async fn load(&mut self, session: String) -> Result<Option<Entry>, StateError> {
        let session = Name::session(session)?;
        let found = self.store.load(self.ns(), &session, self.refresh()).await;
        Ok(self.check(found)?.map(|e| Entry {
            value: e.value,
            version: e.version,
        }))
    }

    async fn save(
        &mut self,
        session: String,
        value: Vec<u8>,
        options: SaveOptions,
    ) -> Result<u64, StateError> {
        let session = Name::session(session)?;
        self.check_size(value.len())?;
        let expiry = match Self::ttl(options.ttl_seconds)? {
            Some(ttl) => Expiry::After(ttl),
            None => self.default_expiry(),
        };
        let saved = self
            .store
            .save(self.ns(), &session, &value, expiry, options.if_version)
            .await;
        self.check(saved)
    }

    async fn delete(&mut self, session: String) -> Result<bool, StateError> {
        let session = Name::session(session)?;
        let deleted = self.store.delete(self.ns(), &session).await;
        self.check(deleted)
    }

    async fn append(&mut self, session: String, items: Vec<Vec<u8>>) -> Result<u64, StateError> {
        let session = Name::session(session)?;
        let limits = &self.config().limits;
        if items.len() > limits.max_items_per_call as usize {
            return Err(StateError::QuotaExceeded(format!(
                "at most {} items per append",
                limits.max_items_per_call
            )));
        }
        self.check_size(items.iter().map(Vec::len).sum())?;
        let max_len = limits.max_history_items;
        let appended = self
            .store
            .append(self.ns(), &session, &items, self.default_expiry(), max_len)
            .await;
        self.check(appended)
    }

    async fn items(
        &mut self,
        session: String,
        last: Option<u32>,
    ) -> Result<Vec<Vec<u8>>, StateError> {
        let session = Name::session(session)?;
        let max = self.config().limits.max_items_per_call;
        let last = last.unwrap_or(max).min(max);
        let items = self
            .store
            .items(self.ns(), &session, last, self.refresh())
            .await;
        self.check(items)
    }

    async fn pop(&mut self, session: String) -> Result<Option<Vec<u8>>, StateError> {
        let session = Name::session(session)?;
        let popped = self.store.pop(self.ns(), &session).await;
        self.check(popped)
    }

    async fn touch(
        &mut self,
        session: String,
        ttl_seconds: Option<u32>,
    ) -> Result<bool, StateError> {
        let session = Name::session(session)?;
        let expiry = Expiry::from_ttl(Self::ttl(ttl_seconds)?);
        let found = self.store.touch(self.ns(), &session, expiry).await;
        self.check(found)
    }

    async fn ttl(&mut self, session: String) -> Result<Option<u32>, StateError> {
        let session = Name::session(session)?;
        let left = self.store.ttl(self.ns(), &session).await;
        // Round up: a session with 0.4 s left still exists.
        Ok(self.check(left)?.map(|d| {
            let secs = d.as_millis().div_ceil(1000);
            u32::try_from(secs).unwrap_or(u32::MAX)
        }))
    }

    async fn clear(&mut self, session: String) -> Result<bool, StateError> {
        let session = Name::session(session)?;
        let cleared = self.store.clear(self.ns(), &session).await;
        self.check(cleared)
    }

    async fn list_sessions(
        &mut self,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page, StateError> {
        if let Some(cursor) = &cursor {
            check_name("cursor", cursor)?;
        }
        let limit = self.per_call_limit(limit, "limit")?;
        let page = self
            .store
            .list_sessions(self.ns(), cursor.as_deref(), limit)
            .await;
        let page = self.check(page)?;
        Ok(Page {
            sessions: page.sessions,
            cursor: page.cursor,
        })
    }

    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, StateError> {
        let key = Name::key(key)?;
        let value = self.store.get(self.ns(), &key).await;
        self.check(value)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: Option<u32>,
    ) -> Result<(), StateError> {
        let key = Name::key(key)?;
        self.check_size(value.len())?;
        let expiry = Expiry::from_ttl(Self::ttl(ttl_seconds)?);
        let set = self.store.set(self.ns(), &key, &value, expiry).await;
        self.check(set)
    }

    async fn remove(&mut self, key: String) -> Result<bool, StateError> {
        let key = Name::key(key)?;
        let removed = self.store.remove(self.ns(), &key).await;
        self.check(removed)
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, StateError> {
        let key = Name::key(key)?;
        let value = self.store.increment(self.ns(), &key, delta).await;
        self.check(value)
    }

    /// The one place a host error becomes the guest's WIT error.
    fn convert_error(&mut self, err: StateError) -> wasmtime::Result<WitError> {
        tracing::debug!(plugin = %self.config().id, error = %err, "state call refused");
        Ok(match err {
            StateError::InvalidKey { .. } => WitError::InvalidKey(err.to_string()),
            StateError::InvalidArgument(msg) => WitError::InvalidArgument(msg),
            StateError::TooLarge { limit, .. } => WitError::TooLarge(limit),
            StateError::QuotaExceeded(msg) => WitError::QuotaExceeded(msg),
            StateError::Store(StoreError::Conflict) => WitError::Conflict,
            StateError::Store(StoreError::QuotaExceeded(msg)) => WitError::QuotaExceeded(msg),
            StateError::Store(StoreError::Unavailable(msg)) => WitError::Unavailable(msg),
            StateError::Store(e @ StoreError::NotAnInteger) => WitError::Internal(e.to_string()),
            StateError::Store(StoreError::Internal(msg)) => WitError::Internal(msg),
        })
    }
}
