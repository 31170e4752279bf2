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
//!   file gets [`StoreError::InUse`] at start, not a corrupted file.
//! - Store calls run on Tokio's blocking pool, so a slow disk never stalls a turn's
//!   executor thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase};

mod buckets;
mod expiring;
mod schedules;
mod spend;
mod tables;
mod usage;
mod versions;
mod writer;

use self::expiring::{
    Records, drop_events, event_key, live_range, push_events, record_key, stream_prefix,
};
use self::schedules::Schedules;
use self::tables::*;
use self::usage::{Ledger, RECORD, entry_size};
use self::writer::Writer;

use super::{
    Claims, Commit, Entry, Finish, KeyPage, ModelCount, Page, Periods, Schedule, Snapshot, Spender,
    StateStore, StoredVersion, Usage,
};
use crate::error::StoreError;
use crate::store::keys::{Name, Namespace};

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
        let db = Database::create(&path).map_err(|e| match e {
            // Another process holds the file's lock (with this redb or another).
            redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch => StoreError::InUse { path: path.clone() },
            e => failed(&e),
        })?;
        // Every table exists from the start, so readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| failed(&e))?;
        txn.open_table(STATE).map_err(|e| failed(&e))?;
        txn.open_table(META).map_err(|e| failed(&e))?;
        txn.open_table(HISTORY).map_err(|e| failed(&e))?;
        txn.open_table(EXPIRY).map_err(|e| failed(&e))?;
        txn.open_table(VALUES).map_err(|e| failed(&e))?;
        txn.open_table(EXPIRING).map_err(|e| failed(&e))?;
        txn.open_table(EXPIRING_BY_TIME).map_err(|e| failed(&e))?;
        txn.open_table(STATE_INFO).map_err(|e| failed(&e))?;
        txn.open_table(VERSIONS).map_err(|e| failed(&e))?;
        txn.open_table(USAGE).map_err(|e| failed(&e))?;
        txn.open_table(USAGE_BY_TIME).map_err(|e| failed(&e))?;
        txn.open_table(USAGE_TOTALS).map_err(|e| failed(&e))?;
        txn.open_table(MODEL_USAGE).map_err(|e| failed(&e))?;
        Schedules::open(&txn)?;
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

    /// Runs `f` in a write transaction and commits it if `f` succeeds.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(internal)?;
            let out = f(&txn)?;
            txn.commit().map_err(internal)?;
            Ok(out)
        })
        .await
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

    async fn items_from(
        &self,
        ns: &Namespace,
        session: &Name,
        start: u64,
        count: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let k = key(ns, session.as_str());
        self.read(move |r| match r.session(&k)? {
            Some(meta) => {
                let from = meta.start.saturating_add(start).min(meta.end);
                let end = from.saturating_add(u64::from(count)).min(meta.end);
                let (lo, hi) = (item_key(&k, from), item_key(&k, end));
                let mut out = Vec::new();
                for row in r
                    .history
                    .range(lo.as_slice()..hi.as_slice())
                    .map_err(internal)?
                {
                    out.push(row.map_err(internal)?.1.value().to_vec());
                }
                Ok(out)
            }
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

    async fn get_many(
        &self,
        ns: &Namespace,
        keys: &[Name],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.values_of(ns, keys).await
    }

    async fn list_bucket(
        &self,
        ns: &Namespace,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, StoreError> {
        self.bucket_page(ns, bucket, after, limit).await
    }

    async fn usage(&self, ns: &Namespace) -> Result<Usage, StoreError> {
        let ns = ns.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(internal)?;
            let usage = {
                let mut ledger = Ledger::open(&txn, now_ms())?;
                ledger.prune(&ns, usize::MAX)?;
                ledger.totals(&ns)?
            };
            txn.commit().map_err(internal)?;
            Ok(usage)
        })
        .await
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
                let mut records = Records::open(&txn, now_ms())?;
                let mut schedules = Schedules::open(&txn)?;
                // A failed check drops the transaction: nothing is written.
                w.check(&ns, &commit)?;
                let most = commit.quota.and_then(|q| q.schedules);
                schedules.check(&ns, &commit.schedules, most)?;
                let before = w.ledger.totals(&ns)?;
                for s in &commit.sessions {
                    if let Some(write) = &s.idempotency {
                        let k = record_key(&ns, &s.session, &write.key);
                        if records.get(&k)?.as_ref() != Some(&write.claim) {
                            return Err(StoreError::Conflict);
                        }
                    }
                }
                for s in &commit.sessions {
                    w.apply_session(&ns, s)?;
                    if let Some(write) = &s.idempotency {
                        let k = record_key(&ns, &s.session, &write.key);
                        records.put(&k, &write.record, write.ttl)?;
                        let size = entry_size(&k, write.record.len() as u64);
                        w.ledger
                            .put(&ns, RECORD, &k, size, at(now_ms(), write.ttl))?;
                    }
                }
                for write in &commit.values {
                    w.apply_value(&ns, &write.name, &write.change)?;
                }
                schedules.apply(&ns, &commit.schedules)?;
                if let Some(quota) = &commit.quota {
                    w.ledger.check(&ns, quota, before)?;
                }
                w.prune(&ns)?;
                w.ledger.prune(&ns, PRUNE_BATCH)?;
                records.prune()?;
            }
            txn.commit().map_err(internal)
        })
        .await
    }

    async fn versions(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<StoredVersion>, StoreError> {
        let k = key(ns, session.as_str());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(internal)?;
            let meta = txn.open_table(META).map_err(internal)?;
            if meta_of(&meta, &k, now_ms())?.is_none() {
                return Ok(Vec::new());
            }
            let state = txn.open_table(STATE).map_err(internal)?;
            let current = state_of(&state, &k)?.map(|e| (e.version, e.value));
            let info = txn.open_table(STATE_INFO).map_err(internal)?;
            let kept = txn.open_table(VERSIONS).map_err(internal)?;
            versions::list(&info, &kept, &k, current)
        })
        .await
    }

    async fn append_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        events: Vec<Vec<u8>>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let (prefix, ns, session, id) = (
            stream_prefix(ns, session, id),
            ns.clone(),
            session.clone(),
            id.to_string(),
        );
        self.blocking(move |db| push_events(db, &ns, &session, &id, &prefix, &events, ttl))
            .await
    }

    async fn drop_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
    ) -> Result<(), StoreError> {
        let (prefix, ns) = (stream_prefix(ns, session, id), ns.clone());
        self.write(move |txn| drop_events(txn, &ns, &prefix)).await
    }

    async fn read_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        from: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let start = event_key(ns, session, id, from);
        let (_, end) = prefixed(&stream_prefix(ns, session, id));
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(internal)?;
            let table = txn.open_table(EXPIRING).map_err(internal)?;
            live_range(&table, &start, &end, now_ms())
        })
        .await
    }

    async fn claim_idempotency(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (k, claim) = (record_key(ns, session, key), claim.to_vec());
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(internal)?;
            // A claim lost in a crash is harmless: its turn had not committed (a
            // commit is durable and replaces the claim).
            txn.set_durability(Durability::None).map_err(internal)?;
            let held = {
                let mut records = Records::open(&txn, now_ms())?;
                let held = records.get(&k)?;
                if held.is_none() {
                    records.put(&k, &claim, ttl)?;
                }
                records.prune()?;
                held
            };
            txn.commit().map_err(internal)?;
            Ok(held)
        })
        .await
    }

    async fn release_idempotency(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
    ) -> Result<(), StoreError> {
        let (k, claim) = (record_key(ns, session, key), claim.to_vec());
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(internal)?;
            txn.set_durability(Durability::None).map_err(internal)?;
            {
                let mut records = Records::open(&txn, now_ms())?;
                if records.get(&k)? == Some(claim) {
                    records.remove(&k)?;
                }
            }
            txn.commit().map_err(internal)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|_| Ok(())).await
    }

    async fn claim_schedules(
        &self,
        ns: &Namespace,
        _bucket: u32,
        lease: Duration,
        limit: u32,
        claim: &str,
    ) -> Result<Claims, StoreError> {
        let (ns, claim) = (ns.clone(), claim.to_owned());
        self.write(move |txn| Schedules::open(txn)?.claim(&ns, now_ms(), lease, limit, &claim))
            .await
    }

    async fn finish_schedule(
        &self,
        ns: &Namespace,
        schedule: &Schedule,
        claim: &str,
        finish: Finish,
    ) -> Result<bool, StoreError> {
        let (ns, schedule, claim) = (ns.clone(), schedule.clone(), claim.to_owned());
        self.write(move |txn| {
            Schedules::open(txn)?.finish(&ns, &schedule, &claim, finish, now_ms())
        })
        .await
    }

    async fn schedule(&self, ns: &Namespace, id: &str) -> Result<Option<Schedule>, StoreError> {
        let (ns, id) = (ns.clone(), id.to_owned());
        self.blocking(move |db| schedules::get(&db.begin_read().map_err(internal)?, &ns, &id))
            .await
    }

    async fn session_schedules(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<Schedule>, StoreError> {
        let (ns, session) = (ns.clone(), session.clone());
        self.blocking(move |db| {
            schedules::of_session(&db.begin_read().map_err(internal)?, &ns, &session)
        })
        .await
    }

    async fn count_schedules(&self, ns: &Namespace) -> Result<u64, StoreError> {
        let ns = ns.clone();
        self.blocking(move |db| schedules::pending(&db.begin_read().map_err(internal)?, &ns))
            .await
    }

    async fn add_model_usage(
        &self,
        spenders: &[Spender],
        periods: &Periods,
        count: &ModelCount,
    ) -> Result<(), StoreError> {
        self.add_spend(spenders, periods, count).await
    }

    async fn model_usage(
        &self,
        spender: &Spender,
        periods: &Periods,
    ) -> Result<[ModelCount; 2], StoreError> {
        self.read_spend(spender, periods).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{EmbeddedStore, META};
    use crate::error::StoreError;
    use crate::store::keys::{Name, Namespace};
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
                idempotency: None,
                keep_versions: 0,
            }],
            ..Commit::default()
        }
    }

    #[test]
    fn a_file_open_elsewhere_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let first = EmbeddedStore::open(&path).unwrap();
        let err = EmbeddedStore::open(&path).unwrap_err();
        assert_eq!(err, StoreError::InUse { path: path.clone() });
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        // Once the first lets go, it opens.
        drop(first);
        EmbeddedStore::open(&path).unwrap();
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
