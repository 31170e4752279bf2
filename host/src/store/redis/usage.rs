//! The usage ledger on Redis (see `store::Quota` and `lua/functions.lua`).
//!
//! On one server the ledger is one set of keys in the plugin's slot, and the commit
//! script checks and updates it with the writes, atomically. On a cluster a
//! plugin's commits spread over the shards, so its ledger does too: one shard per
//! bucket of the session index (a session's entries, an idempotency record's, a
//! stream's and an `agent-state` value's live in the bucket of the session or the
//! value's name, and are updated with the index after the commit), and the plugin's
//! slot for `wasi:keyvalue` keys (which the commit script writes there).
//!
//! ## How exact it is on a cluster
//! Reading every shard costs one script per shard, so a host does it at most every
//! [`FRESH_FOR`] per plugin while the plugin is far from its quota, and counts its
//! own commits since on top (as if each wrote all it may). Within [`MARGIN`] of the
//! quota, every commit reads every shard first.
//! - A commit's sessions are counted by what they add, not what they free (which
//!   only their own slots know), so near its quota a plugin must delete before it
//!   rewrites.
//! - Commits are checked against the sums the shards held when they were read:
//!   commits running at the same moment can together go over by what the others
//!   add (each at most the turn's write budget), and other hosts' commits of the
//!   last [`FRESH_FOR`] can take a plugin past the margin unseen; the next commit
//!   that reads the shards is then refused.
//! - A host that dies between a commit and its index update leaves the commit
//!   uncounted until its entries are written again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::RedisStore;
use super::connection::Conn;
use super::scripts::{now_ms, usage_keys};
use crate::error::StoreError;
use crate::store::keys::{INDEX_BUCKETS, Name, Namespace, index_bucket};
use crate::store::{Commit, ENTRY_OVERHEAD, Quota, StateChange, Usage, ValueChange};

/// A shard of the ledger: `None` the plugin's slot, `Some(b)` bucket `b`'s.
type Shard = Option<u32>;

/// How long a host trusts the shards' sums it read, far from the quota.
pub(super) const FRESH_FOR: Duration = Duration::from_millis(250);

/// How near the quota (a share of it) every commit reads the shards first.
const MARGIN: f64 = 0.1;

/// The sums a host last read of each plugin's ledger on a cluster, with its own
/// commits since counted on top.
#[derive(Default)]
pub(super) struct SumsCache(Mutex<HashMap<String, (Instant, u64, i64)>>);

impl SumsCache {
    /// Counts a commit that passes against fresh sums far from the quota.
    fn take(&self, ns: &Namespace, quota: &Quota, sessions: u64, bytes: i64) -> bool {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some((at, held_sessions, held_bytes)) = cache.get_mut(ns.base()) else {
            return false;
        };
        let far = |held: u64, max: Option<u64>| {
            max.is_none_or(|max| (held as f64) <= max as f64 * (1.0 - MARGIN))
        };
        let fits = at.elapsed() < FRESH_FOR
            && far(*held_sessions + sessions, quota.sessions)
            && far((*held_bytes + bytes).max(0).unsigned_abs(), quota.bytes);
        if fits {
            *held_sessions += sessions;
            *held_bytes += bytes;
        }
        fits
    }

    fn put(&self, ns: &Namespace, sessions: u64, bytes: i64) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(ns.base().to_owned(), (Instant::now(), sessions, bytes));
    }
}

/// The bytes the ledger counts for an entry at `key` holding `len` payload bytes.
pub(super) fn entry_size(key: &str, len: usize) -> u64 {
    (key.len() + len) as u64 + ENTRY_OVERHEAD
}

/// What a commit asks one shard before it is written.
#[derive(Clone, Default)]
struct Ask {
    /// State keys of the sessions the commit may create.
    creating: Vec<String>,
    /// The commit's other entries in the shard, with their new sizes.
    entries: Vec<(String, u64)>,
}

/// The sums of every shard, with what the commit would add.
#[derive(Default)]
struct Sums {
    sessions: u64,
    bytes: i64,
    new_sessions: u64,
    growth: i64,
}

impl RedisStore {
    /// The shard of a session's entries on this store.
    pub(super) fn session_shard(&self, session: &Name) -> Shard {
        match self.conn {
            Conn::Cluster(_) => Some(index_bucket(session)),
            _ => None,
        }
    }

    /// What the namespace keeps, expired entries pruned first.
    pub(super) async fn read_usage(&self, ns: &Namespace) -> Result<Usage, StoreError> {
        let sums = match self.conn {
            Conn::Cluster(_) => self.read_shards(ns, true, BTreeMap::new()).await?,
            _ => self.read_shard(ns, None, true, Ask::default()).await?,
        };
        Ok(Usage {
            sessions: sums.sessions,
            bytes: sums.bytes.max(0).unsigned_abs(),
        })
    }

    /// On a cluster, refuses a commit that would go over the quota (see the
    /// module's notes on how exact this is).
    pub(super) async fn check_quota(
        &self,
        ns: &Namespace,
        commit: &Commit,
    ) -> Result<(), StoreError> {
        let quota = commit.quota.unwrap_or(Quota::UNLIMITED);
        if quota.sessions.is_none() && quota.bytes.is_none() {
            return Ok(());
        }
        let mut asks: BTreeMap<Shard, Ask> = BTreeMap::new();
        let mut added: i64 = 0;
        for s in &commit.sessions {
            let ask = asks.entry(Some(index_bucket(&s.session))).or_default();
            let put = match &s.state {
                StateChange::Put { value, .. } => Some(value.len()),
                _ => None,
            };
            if put.is_some() || !s.append.is_empty() {
                let state = ns.state_key(&s.session);
                let appended: usize = s.append.iter().map(Vec::len).sum();
                let payload = put.unwrap_or(0) + appended;
                added +=
                    (entry_size(&state, payload) + ns.history_key(&s.session).len() as u64) as i64;
                ask.creating.push(state);
            }
            if let Some(record) = &s.idempotency {
                let key = ns.idempotency_key(&s.session, &record.key);
                let size = entry_size(&key, record.record.len());
                ask.entries.push((key, size));
            }
        }
        for write in &commit.values {
            let key = ns.value_key(&write.name);
            let size = match &write.change {
                ValueChange::Set(value, _) => entry_size(&key, value.len()),
                ValueChange::Add(..) => entry_size(&key, 20),
                ValueChange::Remove => 0,
            };
            let shard = (!write.name.is_bucket_key()).then(|| index_bucket(&write.name));
            asks.entry(shard).or_default().entries.push((key, size));
        }
        let over = |sums: &Sums| {
            let sessions = quota.sessions.is_some_and(|max| {
                sums.new_sessions > 0 && sums.sessions + sums.new_sessions > max
            });
            let growth = added + sums.growth;
            let bytes = quota
                .bytes
                .is_some_and(|max| growth > 0 && sums.bytes + growth > max as i64);
            (sessions, bytes)
        };
        let most: i64 = added
            + asks
                .values()
                .flat_map(|ask| &ask.entries)
                .map(|(_, size)| *size as i64)
                .sum::<i64>();
        let creating = asks.values().map(|ask| ask.creating.len() as u64).sum();
        if self.sums.take(ns, &quota, creating, most) {
            return Ok(());
        }
        let sums = self.read_shards(ns, false, asks.clone()).await?;
        if over(&sums) == (false, false) {
            // This commit counts on top of what was read, as later ones will.
            self.sums
                .put(ns, sums.sessions + creating, sums.bytes + most);
            return Ok(());
        }
        // Expired entries may be what fills it: prune them, then look again.
        match over(&self.read_shards(ns, true, asks).await?) {
            (true, _) => Err(quota.sessions_exceeded()),
            (_, true) => Err(quota.bytes_exceeded()),
            _ => Ok(()),
        }
    }

    /// Every shard of the namespace's ledger on a cluster, read at once, summed.
    async fn read_shards(
        &self,
        ns: &Namespace,
        prune: bool,
        mut asks: BTreeMap<Shard, Ask>,
    ) -> Result<Sums, StoreError> {
        let mut reads = JoinSet::new();
        for shard in std::iter::once(None).chain((0..INDEX_BUCKETS).map(Some)) {
            let ask = asks.remove(&shard).unwrap_or_default();
            let (store, ns) = (self.clone(), ns.clone());
            reads.spawn(async move { store.read_shard(&ns, shard, prune, ask).await });
        }
        let mut total = Sums::default();
        while let Some(read) = reads.join_next().await {
            let sums =
                read.map_err(|e| StoreError::Internal(format!("ledger read failed: {e}")))??;
            total.sessions += sums.sessions;
            total.bytes += sums.bytes;
            total.new_sessions += sums.new_sessions;
            total.growth += sums.growth;
        }
        Ok(total)
    }

    /// One shard of the ledger (see `lua/cluster_usage.lua`).
    async fn read_shard(
        &self,
        ns: &Namespace,
        shard: Shard,
        prune: bool,
        ask: Ask,
    ) -> Result<Sums, StoreError> {
        let mut call = self.scripts.usage_shard.prepare_invoke();
        usage_keys(&mut call, ns, shard);
        call.arg(now_ms().to_string())
            .arg(if prune { "1" } else { "0" })
            .arg(ask.creating.len())
            .arg(ask.creating);
        for (key, size) in ask.entries {
            call.arg(key).arg(size);
        }
        let (sessions, bytes, new_sessions, growth): (u64, i64, u64, i64) =
            self.invoke(&call).await?;
        Ok(Sums {
            sessions,
            bytes,
            new_sessions,
            growth,
        })
    }
}
