//! The embedded backend: a file in the process (redb), for a host without a Redis
//! server. It keeps the semantics of the Redis store (versions, history, TTLs, the
//! session index, atomic commits) so the same conformance suite runs on both.
//!
//! ## Behavior
//! - A commit is one redb write transaction with [`redb::Durability::Immediate`]:
//!   when [`StateStore::commit`] returns, the turn is on disk (fsynced). redb keeps
//!   one writer at a time, so commits are serialisable; reads are snapshots and never
//!   wait for a writer.
//! - Expired sessions and values read as absent at once and are removed from the
//!   file by later commits and listings (an expiry index, like the Redis store's).
//! - One process opens a file at a time (redb locks it); a second host on the same
//!   file gets a clear error at start, not a corrupted file.
//! - Store calls run on Tokio's blocking pool, so a slow disk never stalls a turn's
//!   executor thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::{
    Commit, Entry, Expiry, ExpiryChange, Page, SessionCommit, Snapshot, StateChange, StateStore,
    ValueChange,
};
use crate::error::StoreError;
use crate::keys::{Name, Namespace};

/// `ns \0 session` -> (version, document).
const STATE: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("state");
/// `ns \0 session` -> (expires at, unix ms, 0 = never; first history seq; end seq).
/// A row exists exactly when the session does.
const META: TableDefinition<&[u8], (u64, u64, u64)> = TableDefinition::new("meta");
/// `ns \0 session \0 seq (big-endian)` -> item.
const HISTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("history");
/// `ns \0 expires-at (big-endian) session` -> (): sessions that expire, by time.
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");
/// `ns \0 key` -> (expires at, 0 = never; value).
const VALUES: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("values");

/// How many expired sessions one commit or listing removes from the file.
const PRUNE_BATCH: usize = 64;

/// A [`StateStore`] in one file, inside the process.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish()
    }
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating the file (not its directory) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let failed = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
        };
        let db = Database::create(&path).map_err(|e| failed(&e))?;
        // Every table exists from the start, so readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| failed(&e))?;
        txn.open_table(STATE).map_err(|e| failed(&e))?;
        txn.open_table(META).map_err(|e| failed(&e))?;
        txn.open_table(HISTORY).map_err(|e| failed(&e))?;
        txn.open_table(EXPIRY).map_err(|e| failed(&e))?;
        txn.open_table(VALUES).map_err(|e| failed(&e))?;
        txn.commit().map_err(|e| failed(&e))?;
        tracing::info!(path = %path.display(), "embedded store opened");
        Ok(Self {
            db: Arc::new(db),
            path,
        })
    }

    /// The file behind the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Internal(format!("embedded store task failed: {e}")))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(internal)?;
            let reader = Reader {
                state: txn.open_table(STATE).map_err(internal)?,
                meta: txn.open_table(META).map_err(internal)?,
                history: txn.open_table(HISTORY).map_err(internal)?,
                values: txn.open_table(VALUES).map_err(internal)?,
                now: now_ms(),
            };
            f(&reader)
        })
        .await
    }
}

fn internal(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    tracing::error!(error = %e, "embedded store failed");
    StoreError::Internal(format!("embedded store: {e}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

fn at(now: u64, d: Duration) -> u64 {
    now.saturating_add(u64::try_from(d.as_millis().max(1)).unwrap_or(u64::MAX))
}

fn live(expires: u64, now: u64) -> bool {
    expires == 0 || expires > now
}

fn key(ns: &Namespace, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.base().len() + 1 + name.len());
    k.extend_from_slice(ns.base().as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

fn ns_prefix(ns: &Namespace) -> Vec<u8> {
    key(ns, "")
}

/// The bounds of every key that starts with `prefix`.
fn prefixed(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    // No key holds 0xff (ids are UTF-8 without control characters, seqs follow a
    // 0 byte and are bounded by the range of their own session), so `prefix ff`
    // bounds them all.
    let mut end = prefix.to_vec();
    end.push(0xff);
    (prefix.to_vec(), end)
}

fn item_key(session_key: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(session_key.len() + 9);
    k.extend_from_slice(session_key);
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn expiry_key(ns: &Namespace, expires: u64, session: &str) -> Vec<u8> {
    let mut k = ns_prefix(ns);
    k.extend_from_slice(&expires.to_be_bytes());
    k.extend_from_slice(session.as_bytes());
    k
}

/// A session's row in `META`.
#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    expires: u64,
    start: u64,
    end: u64,
}

impl Meta {
    fn len(&self) -> u64 {
        self.end - self.start
    }

    fn ttl(&self, now: u64) -> Option<Duration> {
        (self.expires != 0).then(|| Duration::from_millis(self.expires.saturating_sub(now)))
    }
}

fn meta_of<T: ReadableTable<&'static [u8], (u64, u64, u64)>>(
    table: &T,
    k: &[u8],
    now: u64,
) -> Result<Option<Meta>, StoreError> {
    let Some(row) = table.get(k).map_err(internal)? else {
        return Ok(None);
    };
    let (expires, start, end) = row.value();
    Ok(live(expires, now).then_some(Meta {
        expires,
        start,
        end,
    }))
}

fn state_of<T: ReadableTable<&'static [u8], (u64, &'static [u8])>>(
    table: &T,
    k: &[u8],
) -> Result<Option<Entry>, StoreError> {
    Ok(table.get(k).map_err(internal)?.map(|row| {
        let (version, value) = row.value();
        Entry {
            value: value.to_vec(),
            version,
        }
    }))
}

fn tail_of<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    k: &[u8],
    meta: &Meta,
    last: u32,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let from = meta.end.saturating_sub(u64::from(last)).max(meta.start);
    let (lo, hi) = (item_key(k, from), item_key(k, meta.end));
    let mut out = Vec::with_capacity((meta.end - from) as usize);
    for row in table
        .range(lo.as_slice()..hi.as_slice())
        .map_err(internal)?
    {
        out.push(row.map_err(internal)?.1.value().to_vec());
    }
    Ok(out)
}

fn value_of<T: ReadableTable<&'static [u8], (u64, &'static [u8])>>(
    table: &T,
    k: &[u8],
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(table.get(k).map_err(internal)?.and_then(|row| {
        let (expires, value) = row.value();
        live(expires, now).then(|| value.to_vec())
    }))
}

/// The tables of one read transaction.
struct Reader {
    state: redb::ReadOnlyTable<&'static [u8], (u64, &'static [u8])>,
    meta: redb::ReadOnlyTable<&'static [u8], (u64, u64, u64)>,
    history: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    values: redb::ReadOnlyTable<&'static [u8], (u64, &'static [u8])>,
    now: u64,
}

impl Reader {
    fn session(&self, k: &[u8]) -> Result<Option<Meta>, StoreError> {
        meta_of(&self.meta, k, self.now)
    }
}

/// The tables of one write transaction.
struct Writer<'t> {
    state: Table<'t, &'static [u8], (u64, &'static [u8])>,
    meta: Table<'t, &'static [u8], (u64, u64, u64)>,
    history: Table<'t, &'static [u8], &'static [u8]>,
    expiry: Table<'t, &'static [u8], ()>,
    values: Table<'t, &'static [u8], (u64, &'static [u8])>,
    now: u64,
}

impl<'t> Writer<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            state: txn.open_table(STATE).map_err(internal)?,
            meta: txn.open_table(META).map_err(internal)?,
            history: txn.open_table(HISTORY).map_err(internal)?,
            expiry: txn.open_table(EXPIRY).map_err(internal)?,
            values: txn.open_table(VALUES).map_err(internal)?,
            now: now_ms(),
        })
    }

    /// The live session at `k`, removing it first if it has expired.
    fn session(
        &mut self,
        ns: &Namespace,
        name: &str,
        k: &[u8],
    ) -> Result<Option<Meta>, StoreError> {
        let Some(row) = self.meta.get(k).map_err(internal)? else {
            return Ok(None);
        };
        let (expires, start, end) = row.value();
        drop(row);
        let meta = Meta {
            expires,
            start,
            end,
        };
        if live(expires, self.now) {
            return Ok(Some(meta));
        }
        self.remove_session(ns, name, k, &meta)?;
        Ok(None)
    }

    fn remove_session(
        &mut self,
        ns: &Namespace,
        name: &str,
        k: &[u8],
        meta: &Meta,
    ) -> Result<(), StoreError> {
        self.state.remove(k).map_err(internal)?;
        self.meta.remove(k).map_err(internal)?;
        if meta.expires != 0 {
            self.expiry
                .remove(expiry_key(ns, meta.expires, name).as_slice())
                .map_err(internal)?;
        }
        let (lo, hi) = (item_key(k, meta.start), item_key(k, meta.end));
        self.history
            .retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)
            .map_err(internal)?;
        Ok(())
    }

    /// Live plugin-wide values of the namespace; removes the expired ones.
    fn count_values(&mut self, ns: &Namespace) -> Result<u64, StoreError> {
        let now = self.now;
        let (lo, hi) = prefixed(&ns_prefix(ns));
        self.values
            .retain_in(lo.as_slice()..hi.as_slice(), |_, (expires, _)| {
                live(expires, now)
            })
            .map_err(internal)?;
        let mut n = 0;
        for row in self
            .values
            .range(lo.as_slice()..hi.as_slice())
            .map_err(internal)?
        {
            row.map_err(internal)?;
            n += 1;
        }
        Ok(n)
    }

    /// Removes up to [`PRUNE_BATCH`] expired sessions of the namespace.
    fn prune(&mut self, ns: &Namespace) -> Result<(), StoreError> {
        let lo = ns_prefix(ns);
        let hi = expiry_key(ns, self.now.saturating_add(1), "");
        let mut gone = Vec::new();
        for row in self
            .expiry
            .range(lo.as_slice()..hi.as_slice())
            .map_err(internal)?
            .take(PRUNE_BATCH)
        {
            let (k, _) = row.map_err(internal)?;
            let name = &k.value()[lo.len() + 8..];
            gone.push(String::from_utf8_lossy(name).into_owned());
        }
        for name in gone {
            let k = key(ns, &name);
            self.session(ns, &name, &k)?;
        }
        Ok(())
    }

    /// Fails with the reason if a check of the commit does not hold.
    fn check(&mut self, ns: &Namespace, commit: &Commit) -> Result<(), StoreError> {
        if let (Some(max), false) = (commit.max_values, commit.values.is_empty()) {
            let mut count = self.count_values(ns)?;
            for (name, change) in &commit.values {
                let exists = self
                    .values
                    .get(key(ns, name.as_str()).as_slice())
                    .map_err(internal)?
                    .is_some();
                match change {
                    ValueChange::Remove if exists => count -= 1,
                    ValueChange::Set(..) | ValueChange::Add(_) if !exists => count += 1,
                    _ => {}
                }
            }
            if count > max {
                return Err(StoreError::QuotaExceeded(format!(
                    "at most {max} plugin-wide values"
                )));
            }
        }
        for s in &commit.sessions {
            let k = key(ns, s.session.as_str());
            let meta = self.session(ns, s.session.as_str(), &k)?;
            if let Some(expected) = s.expect_version {
                let version = match meta {
                    Some(_) => state_of(&self.state, &k)?.map_or(0, |e| e.version),
                    None => 0,
                };
                if version != expected {
                    return Err(StoreError::Conflict);
                }
            }
            if let Some(expected) = s.expect_history_len
                && meta.map_or(0, |m| m.len()) != expected
            {
                return Err(StoreError::Conflict);
            }
        }
        for (name, change) in &commit.values {
            if let ValueChange::Add(delta) = change {
                let current = value_of(&self.values, &key(ns, name.as_str()), self.now)?;
                if add(current.as_deref(), *delta).is_none() {
                    return Err(StoreError::Conflict);
                }
            }
        }
        Ok(())
    }

    fn apply_session(&mut self, ns: &Namespace, s: &SessionCommit) -> Result<(), StoreError> {
        let name = s.session.as_str();
        let k = key(ns, name);
        let before = self.session(ns, name, &k)?;
        if let Some(meta) = &before {
            // Re-added below with its new expiry, if the session lives on.
            if meta.expires != 0 {
                self.expiry
                    .remove(expiry_key(ns, meta.expires, name).as_slice())
                    .map_err(internal)?;
            }
        }
        let mut meta = match before {
            Some(meta) if s.clear => {
                self.remove_session(ns, name, &k, &meta)?;
                Meta::default()
            }
            Some(meta) => meta,
            None => Meta::default(),
        };
        match &s.state {
            StateChange::Keep => {}
            StateChange::Put { value, version } => {
                self.state
                    .insert(k.as_slice(), (*version, value.as_slice()))
                    .map_err(internal)?;
            }
            StateChange::Delete => {
                self.state.remove(k.as_slice()).map_err(internal)?;
            }
        }
        for _ in 0..s.pops.min(meta.len()) {
            meta.end -= 1;
            self.history
                .remove(item_key(&k, meta.end).as_slice())
                .map_err(internal)?;
        }
        for item in &s.append {
            self.history
                .insert(item_key(&k, meta.end).as_slice(), item.as_slice())
                .map_err(internal)?;
            meta.end += 1;
        }
        if meta.len() == 0 {
            (meta.start, meta.end) = (0, 0);
        }
        meta.expires = match s.expiry {
            ExpiryChange::Keep => meta.expires,
            ExpiryChange::Set(Expiry::Never) => 0,
            ExpiryChange::Set(Expiry::After(d)) => at(self.now, d),
            // Like PEXPIRE GT: a session without expiry keeps none.
            ExpiryChange::Extend(d) if meta.expires != 0 => meta.expires.max(at(self.now, d)),
            ExpiryChange::Extend(_) => 0,
        };
        let exists = meta.len() > 0 || self.state.get(k.as_slice()).map_err(internal)?.is_some();
        if exists {
            self.meta
                .insert(k.as_slice(), (meta.expires, meta.start, meta.end))
                .map_err(internal)?;
            if meta.expires != 0 {
                self.expiry
                    .insert(expiry_key(ns, meta.expires, name).as_slice(), ())
                    .map_err(internal)?;
            }
        } else {
            self.meta.remove(k.as_slice()).map_err(internal)?;
        }
        Ok(())
    }

    fn apply_value(
        &mut self,
        ns: &Namespace,
        name: &Name,
        change: &ValueChange,
    ) -> Result<(), StoreError> {
        let k = key(ns, name.as_str());
        match change {
            ValueChange::Set(value, expiry) => {
                let expires = match expiry {
                    Expiry::Never => 0,
                    Expiry::After(d) => at(self.now, *d),
                };
                self.values
                    .insert(k.as_slice(), (expires, value.as_slice()))
                    .map_err(internal)?;
            }
            ValueChange::Remove => {
                self.values.remove(k.as_slice()).map_err(internal)?;
            }
            ValueChange::Add(delta) => {
                let (expires, current) = match self.values.get(k.as_slice()).map_err(internal)? {
                    Some(row) if live(row.value().0, self.now) => {
                        (row.value().0, Some(row.value().1.to_vec()))
                    }
                    _ => (0, None),
                };
                let sum = add(current.as_deref(), *delta).ok_or(StoreError::Conflict)?;
                self.values
                    .insert(k.as_slice(), (expires, sum.to_string().as_bytes()))
                    .map_err(internal)?;
            }
        }
        Ok(())
    }
}

/// `current + delta` if `current` is an integer (see [`super::parse_integer`]) or
/// absent, and the sum fits.
fn add(current: Option<&[u8]>, delta: i64) -> Option<i64> {
    match current {
        None => Some(delta),
        Some(bytes) => super::parse_integer(bytes)?.checked_add(delta),
    }
}

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn snapshot(
        &self,
        ns: &Namespace,
        session: &Name,
        tail: u32,
    ) -> Result<Snapshot, StoreError> {
        let k = key(ns, session.as_str());
        self.read(move |r| {
            let Some(meta) = r.session(&k)? else {
                return Ok(Snapshot::default());
            };
            Ok(Snapshot {
                state: state_of(&r.state, &k)?,
                history_len: meta.len(),
                tail: tail_of(&r.history, &k, &meta, tail)?,
                ttl: meta.ttl(r.now),
            })
        })
        .await
    }

    async fn load(&self, ns: &Namespace, session: &Name) -> Result<Option<Entry>, StoreError> {
        let k = key(ns, session.as_str());
        self.read(move |r| match r.session(&k)? {
            Some(_) => state_of(&r.state, &k),
            None => Ok(None),
        })
        .await
    }

    async fn items(
        &self,
        ns: &Namespace,
        session: &Name,
        last: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let k = key(ns, session.as_str());
        self.read(move |r| match r.session(&k)? {
            Some(meta) => tail_of(&r.history, &k, &meta, last),
            None => Ok(Vec::new()),
        })
        .await
    }

    async fn ttl(&self, ns: &Namespace, session: &Name) -> Result<Option<Duration>, StoreError> {
        let k = key(ns, session.as_str());
        self.read(move |r| Ok(r.session(&k)?.and_then(|m| m.ttl(r.now))))
            .await
    }

    async fn list_sessions(
        &self,
        ns: &Namespace,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let ns = ns.clone();
        let cursor = cursor.map(str::to_owned);
        self.blocking(move |db| {
            // Read in a snapshot (expired sessions are skipped); write only when the
            // expiry index has something to prune, so listing rarely waits or fsyncs.
            let txn = db.begin_read().map_err(internal)?;
            let meta = txn.open_table(META).map_err(internal)?;
            let expiry = txn.open_table(EXPIRY).map_err(internal)?;
            let now = now_ms();
            let prefix = ns_prefix(&ns);
            let lo = match &cursor {
                // Just after the cursor: its key followed by a 0 byte.
                Some(c) => {
                    let mut k = key(&ns, c);
                    k.push(0);
                    k
                }
                None => prefix.clone(),
            };
            let mut hi = prefix.clone();
            hi.push(0xff);
            let mut sessions = Vec::new();
            for row in meta.range(lo.as_slice()..hi.as_slice()).map_err(internal)? {
                let (k, v) = row.map_err(internal)?;
                if !live(v.value().0, now) {
                    continue;
                }
                let name = &k.value()[prefix.len()..];
                sessions.push(String::from_utf8_lossy(name).into_owned());
                if sessions.len() >= limit as usize {
                    break;
                }
            }
            let due = expiry_key(&ns, now.saturating_add(1), "");
            let expired = expiry
                .range(prefix.as_slice()..due.as_slice())
                .map_err(internal)?
                .next()
                .is_some();
            drop((meta, expiry, txn));
            if expired {
                let txn = db.begin_write().map_err(internal)?;
                Writer::open(&txn)?.prune(&ns)?;
                txn.commit().map_err(internal)?;
            }
            let cursor = (sessions.len() >= limit as usize)
                .then(|| sessions.last().cloned())
                .flatten();
            Ok(Page { sessions, cursor })
        })
        .await
    }

    async fn get(&self, ns: &Namespace, key_name: &Name) -> Result<Option<Vec<u8>>, StoreError> {
        let k = key(ns, key_name.as_str());
        self.read(move |r| value_of(&r.values, &k, r.now)).await
    }

    async fn count_values(&self, ns: &Namespace) -> Result<u64, StoreError> {
        let (lo, hi) = prefixed(&ns_prefix(ns));
        self.read(move |r| {
            let mut n = 0;
            for row in r
                .values
                .range(lo.as_slice()..hi.as_slice())
                .map_err(internal)?
            {
                let (_, v) = row.map_err(internal)?;
                if live(v.value().0, r.now) {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }

    async fn commit(&self, ns: &Namespace, commit: Commit) -> Result<(), StoreError> {
        if commit.is_empty() {
            return Ok(());
        }
        let ns = ns.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(internal)?;
            {
                let mut w = Writer::open(&txn)?;
                // A failed check drops the transaction: nothing is written.
                w.check(&ns, &commit)?;
                for s in &commit.sessions {
                    w.apply_session(&ns, s)?;
                }
                for (name, change) in &commit.values {
                    w.apply_value(&ns, name, change)?;
                }
                w.prune(&ns)?;
            }
            txn.commit().map_err(internal)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{EmbeddedStore, META};
    use crate::keys::{Name, Namespace};
    use crate::store::{Commit, Expiry, ExpiryChange, SessionCommit, StateChange, StateStore};
    use redb::{ReadableDatabase, ReadableTableMetadata};

    fn put(session: &str, ttl: Duration) -> Commit {
        Commit {
            sessions: vec![SessionCommit {
                session: Name::session(session).unwrap(),
                expect_version: None,
                expect_history_len: None,
                clear: false,
                state: StateChange::Put {
                    value: b"v".to_vec(),
                    version: 1,
                },
                pops: 0,
                append: vec![b"item".to_vec()],
                expiry: ExpiryChange::Set(Expiry::After(ttl)),
            }],
            ..Commit::default()
        }
    }

    #[tokio::test]
    async fn expired_sessions_leave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("s.redb")).unwrap();
        let ns = Namespace::new("agent", "t").unwrap();
        // "short" last: a commit prunes what has expired, so committing anything
        // after it could already remove it on a slow machine.
        store
            .commit(&ns, put("long", Duration::from_secs(600)))
            .await
            .unwrap();
        store
            .commit(&ns, put("short", Duration::from_millis(30)))
            .await
            .unwrap();
        let rows = || {
            store
                .db
                .begin_read()
                .unwrap()
                .open_table(META)
                .unwrap()
                .len()
                .unwrap()
        };
        assert_eq!(rows(), 2);
        // Real time must pass for a TTL; 30 ms is the whole wait.
        std::thread::sleep(Duration::from_millis(40));
        let page = store.list_sessions(&ns, None, 10).await.unwrap();
        assert_eq!(page.sessions, vec!["long".to_string()]);
        assert_eq!(rows(), 1, "the expired session is still in the file");
        // Reopening keeps what is live.
        drop(store);
        let store = EmbeddedStore::open(dir.path().join("s.redb")).unwrap();
        let long = Name::session("long").unwrap();
        assert!(store.load(&ns, &long).await.unwrap().is_some());
        assert_eq!(
            store.items(&ns, &long, 10).await.unwrap(),
            vec![b"item".to_vec()]
        );
    }
}
