//! The host side of the WIT interface `agent-state`: checks every argument from the
//! guest, applies the plugin's policy (TTLs, limits) and hands the call to the
//! turn's staged view (`turn.rs`).

use std::sync::Arc;
use std::time::Duration;

use crate::config::PluginConfig;
use crate::error::{StateError, StoreError};
use crate::guest::bindings::agent_state::{
    self, Entry, Error as WitError, Page, SaveOptions, VersionInfo,
};
use crate::guest::output::{Emitter, Stream};
use crate::store::keys::{Name, check_name};
use crate::turn::Turn;

/// The `agent-state` context of one turn.
pub(crate) struct StateCtx {
    pub(crate) turn: Turn,
    /// Where `output.emit` sends chunks.
    pub(crate) emitter: Emitter,
    /// Calls refused for a limit or quota during the run, and the first reason.
    pub(crate) refused_calls: u64,
    pub(crate) first_refusal: Option<String>,
}

impl StateCtx {
    /// The context of a run of `turn`.
    pub(crate) fn new(turn: Turn, stream: Option<Arc<Stream>>) -> Self {
        let emitter = Emitter::new(stream, &turn.scope().config.limits);
        Self {
            turn,
            emitter,
            refused_calls: 0,
            first_refusal: None,
        }
    }
}

impl StateCtx {
    fn config(&self) -> &PluginConfig {
        &self.turn.scope().config
    }

    pub(crate) fn check_size(&self, size: usize) -> Result<(), StateError> {
        let limit = self.config().limits.max_value_bytes;
        let size = size as u64;
        if size > limit {
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

    /// Counts a call refused for a limit or quota (logged once per run, see
    /// `sandbox::log_refusals`); other errors are the plugin's to handle.
    pub(crate) fn note_refusal(&mut self, err: &StateError) {
        if matches!(
            err,
            StateError::TooLarge { .. }
                | StateError::QuotaExceeded(_)
                | StateError::Store(StoreError::QuotaExceeded(_))
        ) {
            self.refused_calls += 1;
            if self.first_refusal.is_none() {
                self.first_refusal = Some(err.to_string());
            }
        }
    }
}

impl crate::guest::bindings::output::Host for StateCtx {
    async fn emit(&mut self, chunk: String) -> Result<(), StateError> {
        self.emitter.emit(chunk)
    }
}

impl agent_state::Host for StateCtx {
    async fn load(&mut self, session: String) -> Result<Option<Entry>, StateError> {
        let session = Name::session(session)?;
        Ok(self.turn.load(&session).await?.map(|e| Entry {
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
        let ttl = Self::ttl(options.ttl_seconds)?;
        self.turn
            .save(&session, value, ttl, options.if_version)
            .await
    }

    async fn delete(&mut self, session: String) -> Result<bool, StateError> {
        let session = Name::session(session)?;
        self.turn.delete(&session).await
    }

    async fn versions(&mut self, session: String) -> Result<Vec<VersionInfo>, StateError> {
        let session = Name::session(session)?;
        let versions = self.turn.versions(&session).await?;
        Ok(versions
            .iter()
            .map(|v| VersionInfo {
                version: v.version,
                written_at_ms: v.written_at_ms,
                bytes: v.value.len() as u64,
                history_len: v.history_len,
            })
            .collect())
    }

    async fn load_version(
        &mut self,
        session: String,
        version: u64,
    ) -> Result<Option<Entry>, StateError> {
        let session = Name::session(session)?;
        let versions = self.turn.versions(&session).await?;
        Ok(versions
            .into_iter()
            .find(|v| v.version == version)
            .map(|v| Entry {
                value: v.value,
                version: v.version,
            }))
    }

    async fn append(&mut self, session: String, items: Vec<Vec<u8>>) -> Result<u64, StateError> {
        let session = Name::session(session)?;
        let per_call = self.config().limits.max_items_per_call;
        if items.len() > per_call as usize {
            return Err(StateError::QuotaExceeded(format!(
                "at most {per_call} items per append"
            )));
        }
        self.check_size(items.iter().map(Vec::len).sum())?;
        self.turn.append(&session, items).await
    }

    async fn items(
        &mut self,
        session: String,
        last: Option<u32>,
    ) -> Result<Vec<Vec<u8>>, StateError> {
        let session = Name::session(session)?;
        let max = self.config().limits.max_items_per_call;
        let last = last.unwrap_or(max).min(max);
        self.turn.items(&session, last).await
    }

    async fn pop(&mut self, session: String) -> Result<Option<Vec<u8>>, StateError> {
        let session = Name::session(session)?;
        self.turn.pop(&session).await
    }

    async fn touch(
        &mut self,
        session: String,
        ttl_seconds: Option<u32>,
    ) -> Result<bool, StateError> {
        let session = Name::session(session)?;
        let ttl = Self::ttl(ttl_seconds)?;
        self.turn.touch(&session, ttl).await
    }

    async fn ttl(&mut self, session: String) -> Result<Option<u32>, StateError> {
        let session = Name::session(session)?;
        // Round up: a session with 0.4 s left still exists.
        Ok(self.turn.ttl(&session).await?.map(|d| {
            let secs = d.as_millis().div_ceil(1000);
            u32::try_from(secs).unwrap_or(u32::MAX)
        }))
    }

    async fn clear(&mut self, session: String) -> Result<bool, StateError> {
        let session = Name::session(session)?;
        self.turn.clear(&session).await
    }

    async fn list_sessions(
        &mut self,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page, StateError> {
        if let Some(cursor) = &cursor {
            check_name("cursor", cursor)?;
        }
        if limit == 0 {
            return Err(StateError::InvalidArgument(
                "limit must be at least 1".into(),
            ));
        }
        let limit = limit.min(self.config().limits.max_items_per_call);
        let page = self.turn.list_sessions(cursor.as_deref(), limit).await?;
        Ok(Page {
            sessions: page.sessions,
            cursor: page.cursor,
        })
    }

    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, StateError> {
        let key = Name::key(key)?;
        self.turn.get(&key).await
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_seconds: Option<u32>,
    ) -> Result<(), StateError> {
        let key = Name::key(key)?;
        self.check_size(value.len())?;
        let ttl = Self::ttl(ttl_seconds)?;
        self.turn.set(&key, value, ttl).await
    }

    async fn remove(&mut self, key: String) -> Result<bool, StateError> {
        let key = Name::key(key)?;
        self.turn.remove(&key).await
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, StateError> {
        let key = Name::key(key)?;
        self.turn.increment(&key, delta).await
    }

    /// The one place a host error becomes the guest's WIT error. Refusals for a
    /// limit are counted here and logged once per run (`sandbox::log_refusals`).
    fn convert_error(&mut self, err: StateError) -> wasmtime::Result<WitError> {
        self.note_refusal(&err);
        Ok(match err {
            StateError::InvalidKey { .. } => WitError::InvalidKey(err.to_string()),
            StateError::InvalidArgument(msg) => WitError::InvalidArgument(msg),
            StateError::TooLarge { limit, .. } => WitError::TooLarge(limit),
            StateError::QuotaExceeded(msg) => WitError::QuotaExceeded(msg),
            StateError::Store(StoreError::Conflict) => WitError::Conflict,
            StateError::Store(StoreError::QuotaExceeded(msg)) => WitError::QuotaExceeded(msg),
            StateError::Store(StoreError::Unavailable(msg)) => WitError::Unavailable(msg),
            StateError::Store(e @ (StoreError::NotAnInteger | StoreError::Overflow)) => {
                WitError::Internal(e.to_string())
            }
            StateError::Store(StoreError::Internal(msg)) => WitError::Internal(msg),
            // Only an open gives it, never a call of a guest; the path stays out.
            StateError::Store(StoreError::InUse { .. }) => {
                WitError::Unavailable("the store file is open in another process".into())
            }
        })
    }
}
