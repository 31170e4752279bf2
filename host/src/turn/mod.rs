//! A turn's view of its plugin's state.
//!
//! Reads go to the store the first time a session or value is used and are kept;
//! writes are staged here and become one [`Commit`] when the turn ends. Every read
//! sees the turn's own writes. The commit carries what the turn relied on (the
//! state version it saw, the history length it saw) so a concurrent turn that
//! changed them in between makes the commit fail as a conflict instead of being
//! overwritten.

mod buckets;
pub(crate) mod idempotency;
pub(crate) mod prefetch;
pub(crate) mod schedules;
pub(crate) mod scope;
pub(crate) mod session_locks;
mod values;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use self::values::ValueStage;
use crate::error::{StateError, StoreError};
use crate::store::keys::Name;
use crate::store::{
    Commit, Entry, Expiry, ExpiryChange, Page, SessionCommit, Snapshot, StateChange, StateStore,
    StoredVersion, ValueCheck, ValueWrite,
};
use crate::turn::scope::PluginScope;

/// The staged state of one turn.
pub(crate) struct Turn {
    scope: Arc<PluginScope>,
    store: Arc<dyn StateStore>,
    sessions: HashMap<String, SessionStage>,
    values: HashMap<String, ValueStage>,
    /// Live plugin-wide values in the store, fetched when the turn first creates one.
    values_live: Option<u64>,
    staged_bytes: u64,
    /// Schedules added and cancelled.
    schedules: schedules::ScheduleStage,
    /// The last "store unavailable" a call of this turn got, to tell the caller why
    /// a plugin failed.
    pub(crate) unavailable: Option<String>,
}

struct SessionStage {
    name: Name,
    base: Snapshot,
    read_state: bool,
    read_history: bool,
    cleared: bool,
    /// The version the state had after the last clear or delete (or in the store).
    version_base: u64,
    saves: u64,
    state: Staged,
    popped: u64,
    appended: Vec<Vec<u8>>,
    expiry: ExpiryChange,
}

enum Staged {
    Base,
    Put(Vec<u8>),
    Deleted,
}

impl SessionStage {
    fn new(name: Name, base: Snapshot) -> Self {
        let version_base = base.state.as_ref().map_or(0, |e| e.version);
        Self {
            name,
            base,
            read_state: false,
            read_history: false,
            cleared: false,
            version_base,
            saves: 0,
            state: Staged::Base,
            popped: 0,
            appended: Vec::new(),
            expiry: ExpiryChange::Keep,
        }
    }

    fn base_state(&self) -> Option<&Entry> {
        if self.cleared {
            None
        } else {
            self.base.state.as_ref()
        }
    }

    fn state(&self) -> Option<(&[u8], u64)> {
        match &self.state {
            Staged::Put(v) => Some((v, self.version_base + self.saves)),
            Staged::Deleted => None,
            Staged::Base => self.base_state().map(|e| (e.value.as_slice(), e.version)),
        }
    }

    fn base_len(&self) -> u64 {
        if self.cleared {
            0
        } else {
            self.base.history_len
        }
    }

    /// Stored items still visible (not popped).
    fn kept_len(&self) -> u64 {
        self.base_len() - self.popped
    }

    fn history_len(&self) -> u64 {
        self.kept_len() + self.appended.len() as u64
    }

    fn exists(&self) -> bool {
        self.state().is_some() || self.history_len() > 0
    }

    fn changed(&self) -> bool {
        self.cleared
            || !matches!(self.state, Staged::Base)
            || self.popped > 0
            || !self.appended.is_empty()
            || self.expiry != ExpiryChange::Keep
    }

    fn set_expiry(&mut self, expiry: Expiry) {
        self.expiry = ExpiryChange::Set(expiry);
    }
}

impl Turn {
    pub(crate) fn new(scope: Arc<PluginScope>, store: Arc<dyn StateStore>) -> Self {
        Self {
            scope,
            store,
            sessions: HashMap::new(),
            values: HashMap::new(),
            values_live: None,
            staged_bytes: 0,
            schedules: schedules::ScheduleStage::default(),
            unavailable: None,
        }
    }

    pub(crate) fn scope(&self) -> &PluginScope {
        &self.scope
    }

    fn check<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StateError> {
        if let Err(StoreError::Unavailable(reason)) = &result {
            self.unavailable = Some(reason.clone());
        }
        Ok(result?)
    }

    /// Counts bytes against the per-turn write budget.
    fn charge(&mut self, bytes: usize) -> Result<(), StateError> {
        let limit = self.scope.config.limits.max_turn_bytes;
        let total = self.staged_bytes.saturating_add(bytes as u64);
        if total > limit {
            return Err(StateError::QuotaExceeded(format!(
                "a turn may write at most {limit} bytes"
            )));
        }
        self.staged_bytes = total;
        Ok(())
    }

    /// Fetches the session's snapshot on first use (one round trip).
    pub(crate) async fn prefetch(&mut self, session: &Name) -> Result<(), StateError> {
        self.session(session).await.map(|_| ())
    }

    async fn session(&mut self, session: &Name) -> Result<&mut SessionStage, StateError> {
        if !self.sessions.contains_key(session.as_str()) {
            let snapshot = self
                .store
                .snapshot(&self.scope.ns, session, self.scope.prefetch.next())
                .await;
            let snapshot = self.check(snapshot)?;
            self.sessions.insert(
                session.as_str().to_owned(),
                SessionStage::new(session.clone(), snapshot),
            );
        }
        Ok(self
            .sessions
            .get_mut(session.as_str())
            .expect("inserted above"))
    }

    fn default_expiry(&self) -> Expiry {
        Expiry::from_ttl(self.scope.config.default_ttl)
    }

    pub(crate) async fn load(&mut self, session: &Name) -> Result<Option<Entry>, StateError> {
        let scope = self.scope.clone();
        let stage = self.session(session).await?;
        stage.read_state = true;
        let entry = stage.state().map(|(value, version)| Entry {
            value: value.to_vec(),
            version,
        });
        if scope.config.sliding_ttl && stage.exists() {
            let stage = self.sessions.get_mut(session.as_str()).expect("present");
            slide_stage(&scope, stage);
        }
        Ok(entry)
    }

    pub(crate) async fn save(
        &mut self,
        session: &Name,
        value: Vec<u8>,
        ttl: Option<Duration>,
        if_version: Option<u64>,
    ) -> Result<u64, StateError> {
        self.charge(value.len())?;
        let expiry = ttl.map_or_else(|| self.default_expiry(), Expiry::After);
        let stage = self.session(session).await?;
        stage.read_state = true;
        let current = stage.state().map_or(0, |(_, v)| v);
        if if_version.is_some_and(|expected| expected != current) {
            return Err(StoreError::Conflict.into());
        }
        if stage.state().is_none() {
            // A save after a delete or clear starts again from version 0, as the
            // store does.
            stage.version_base = 0;
            stage.saves = 0;
        }
        stage.saves += 1;
        stage.state = Staged::Put(value);
        stage.set_expiry(expiry);
        Ok(stage.version_base + stage.saves)
    }

    pub(crate) async fn delete(&mut self, session: &Name) -> Result<bool, StateError> {
        let stage = self.session(session).await?;
        stage.read_state = true;
        let existed = stage.state().is_some();
        if existed {
            stage.state = Staged::Deleted;
            stage.version_base = 0;
            stage.saves = 0;
        }
        Ok(existed)
    }

    pub(crate) async fn append(
        &mut self,
        session: &Name,
        items: Vec<Vec<u8>>,
    ) -> Result<u64, StateError> {
        let bytes = items.iter().map(Vec::len).sum();
        let max_len = self.scope.config.limits.max_history_items;
        let expiry = self.default_expiry();
        let stage = self.session(session).await?;
        if items.is_empty() {
            return Ok(stage.history_len());
        }
        let new_len = stage.history_len() + items.len() as u64;
        if new_len > max_len {
            return Err(StateError::QuotaExceeded(format!(
                "history would be longer than {max_len} items"
            )));
        }
        self.charge(bytes)?;
        let stage = self.sessions.get_mut(session.as_str()).expect("present");
        stage.appended.extend(items);
        stage.set_expiry(expiry);
        Ok(new_len)
    }

    /// Makes sure the snapshot's tail holds the newest `needed` stored items.
    async fn ensure_tail(&mut self, session: &Name, needed: u64) -> Result<(), StateError> {
        let stage = &self.sessions[session.as_str()];
        let needed = needed.min(stage.base.history_len);
        if stage.base.tail.len() as u64 >= needed {
            return Ok(());
        }
        let last = u32::try_from(needed).unwrap_or(u32::MAX);
        let items = self.store.items(&self.scope.ns, session, last).await;
        let items = self.check(items)?;
        let stage = self.sessions.get_mut(session.as_str()).expect("present");
        stage.base.tail = items;
        Ok(())
    }

    pub(crate) async fn items(
        &mut self,
        session: &Name,
        last: u32,
    ) -> Result<Vec<Vec<u8>>, StateError> {
        let scope = self.scope.clone();
        let stage = self.session(session).await?;
        stage.read_history = true;
        let last = u64::from(last);
        let from_appended = last.min(stage.appended.len() as u64);
        let from_kept = (last - from_appended).min(stage.kept_len());
        // Stored items wanted: the `from_kept` before the popped ones.
        let needed = from_kept + stage.popped;
        if !stage.cleared {
            // What a longer history would have needed, for the prefetch to learn.
            scope
                .prefetch
                .wanted((last - from_appended).saturating_add(stage.popped));
            self.ensure_tail(session, needed).await?;
        }
        let stage = self.sessions.get_mut(session.as_str()).expect("present");
        let tail = &stage.base.tail;
        let end = tail.len() - stage.popped.min(tail.len() as u64) as usize;
        let start = end - (from_kept as usize).min(end);
        let mut out: Vec<Vec<u8>> = tail[start..end].to_vec();
        let appended = &stage.appended;
        out.extend_from_slice(&appended[appended.len() - from_appended as usize..]);
        if scope.config.sliding_ttl && stage.exists() {
            slide_stage(&scope, stage);
        }
        Ok(out)
    }

    pub(crate) async fn pop(&mut self, session: &Name) -> Result<Option<Vec<u8>>, StateError> {
        let stage = self.session(session).await?;
        stage.read_history = true;
        if let Some(item) = stage.appended.pop() {
            return Ok(Some(item));
        }
        if stage.kept_len() == 0 {
            return Ok(None);
        }
        let needed = stage.popped + 1;
        self.scope.prefetch.wanted(needed);
        self.ensure_tail(session, needed).await?;
        let stage = self.sessions.get_mut(session.as_str()).expect("present");
        let tail = &stage.base.tail;
        // The history can only be shorter than the snapshot said if another turn
        // changed it meanwhile; this turn's commit would fail on that anyway.
        let Some(index) = tail.len().checked_sub(needed as usize) else {
            return Err(StoreError::Conflict.into());
        };
        let item = tail[index].clone();
        stage.popped += 1;
        Ok(Some(item))
    }

    pub(crate) async fn touch(
        &mut self,
        session: &Name,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        let stage = self.session(session).await?;
        if !stage.exists() {
            return Ok(false);
        }
        stage.set_expiry(Expiry::from_ttl(ttl));
        Ok(true)
    }

    pub(crate) async fn ttl(&mut self, session: &Name) -> Result<Option<Duration>, StateError> {
        let stage = self.session(session).await?;
        if !stage.exists() {
            return Ok(None);
        }
        Ok(match stage.expiry {
            ExpiryChange::Set(Expiry::After(d)) => Some(d),
            ExpiryChange::Set(Expiry::Never) => None,
            ExpiryChange::Extend(d) => stage.base.ttl.map(|t| t.max(d)),
            ExpiryChange::Keep => stage.base.ttl,
        })
    }

    pub(crate) async fn clear(&mut self, session: &Name) -> Result<bool, StateError> {
        let stage = self.session(session).await?;
        let existed = stage.exists();
        stage.cleared = true;
        stage.state = Staged::Base;
        stage.version_base = 0;
        stage.saves = 0;
        stage.popped = 0;
        stage.appended.clear();
        stage.expiry = ExpiryChange::Keep;
        Ok(existed)
    }

    pub(crate) async fn list_sessions(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, StateError> {
        let page = self
            .store
            .list_sessions(&self.scope.ns, cursor, limit)
            .await;
        self.check(page)
    }

    /// Kept versions read the store: this turn's own saves appear after it commits.
    pub(crate) async fn versions(
        &mut self,
        session: &Name,
    ) -> Result<Vec<StoredVersion>, StateError> {
        let versions = self.store.versions(&self.scope.ns, session).await;
        self.check(versions)
    }

    /// Everything this turn wrote, with what it relied on.
    pub(crate) fn into_commit(self) -> Commit {
        let mut commit = Commit {
            max_values: Some(self.scope.config.limits.max_values),
            quota: Some(self.scope.config.quota),
            schedules: self.schedules.writes,
            ..Commit::default()
        };
        let any_write = self.sessions.values().any(SessionStage::changed)
            || self.values.values().any(|v| v.change.is_some())
            || !commit.schedules.is_empty();
        if !any_write {
            return commit;
        }
        for stage in self.sessions.into_values() {
            if !stage.changed() && !stage.read_state && !stage.read_history {
                continue;
            }
            let base_version = stage.base.state.as_ref().map_or(0, |e| e.version);
            commit.sessions.push(SessionCommit {
                expect_version: stage.read_state.then_some(base_version),
                expect_history_len: stage.read_history.then_some(stage.base.history_len),
                clear: stage.cleared,
                state: match stage.state {
                    Staged::Base => StateChange::Keep,
                    Staged::Put(value) => StateChange::Put {
                        value,
                        version: stage.version_base + stage.saves,
                    },
                    Staged::Deleted => StateChange::Delete,
                },
                pops: stage.popped,
                append: stage.appended,
                expiry: stage.expiry,
                idempotency: None,
                keep_versions: self.scope.config.keep_versions,
                session: stage.name,
            });
        }
        for stage in self.values.into_values() {
            if let Some(change) = stage.change {
                let expect = stage.expect_base.then_some(match stage.base {
                    Some(bytes) => ValueCheck::Equals(bytes),
                    None => ValueCheck::Absent,
                });
                commit.values.push(ValueWrite {
                    name: stage.name,
                    change,
                    expect,
                });
            }
        }
        commit
    }
}

fn slide_stage(scope: &PluginScope, stage: &mut SessionStage) {
    if let (Some(ttl), ExpiryChange::Keep) = (scope.config.default_ttl, stage.expiry) {
        stage.expiry = ExpiryChange::Extend(ttl);
    }
}

/// Waits 1-2 ms, then 2-4 ms, 4-8 ms... (at most 64-128 ms), so turns that
/// conflicted do not meet again.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, RandomState};
    use std::time::{Duration, Instant};
    let base = 1u64 << attempt.min(7).saturating_sub(1);
    let jitter = RandomState::new().hash_one(Instant::now()) % (base * 1000);
    Duration::from_micros(base * 1000 + jitter)
}
