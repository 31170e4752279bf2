//! Commits and listing on a Redis Cluster, where a script may touch one slot only
//! and a plugin's session index is split into buckets (see `keys`).

use std::collections::BTreeMap;

use super::RedisStore;
use super::scripts::{
    limit_arg, now_ms, session_args, session_keys, usage_keys, value_args, value_op,
    values_invocation,
};
use crate::error::StoreError;
use crate::keys::{INDEX_BUCKETS, Namespace, index_bucket};
use crate::store::{Commit, ENTRY_OVERHEAD, StateChange, ValueChange, ValueWrite};

impl RedisStore {
    /// A commit on a Redis Cluster, where a script may touch one slot only: the
    /// turn's `wasi:keyvalue` bucket keys (in the plugin's slot) are checked and
    /// written atomically together, then each session (its keys share a hash tag)
    /// by itself, then each other plugin-wide value, then the plugin's indexes.
    ///
    /// A turn that writes one session (the usual turn) is atomic as before. A turn
    /// that writes several sessions or values is atomic per session and value: if
    /// the first part's check fails nothing is written and the turn is retried
    /// ([`StoreError::Conflict`]); if a later part's check fails the parts before it
    /// stay written and the turn fails without a retry, so nothing is written twice.
    pub(super) async fn commit_per_slot(
        &self,
        ns: &Namespace,
        commit: &Commit,
    ) -> Result<(), StoreError> {
        let now = now_ms().to_string();
        if let (Some(max), false) = (commit.max_values, commit.values.is_empty()) {
            let mut call = self.scripts.quota.prepare_invoke();
            call.key(ns.index_values_key()).arg(&now).arg(max);
            for write in &commit.values {
                call.arg(write.name.as_str()).arg(value_op(&write.change));
            }
            let over: i64 = self.invoke(&call).await?;
            if over == 1 {
                return Err(StoreError::QuotaExceeded(format!(
                    "at most {max} plugin-wide values"
                )));
            }
        }
        self.check_quota(ns, commit, &now).await?;
        let mut written = Vec::new();
        // The ledger's entries for what was written (see `lua/cluster_usage.lua`).
        let mut ledger: Vec<Vec<u8>> = Vec::new();
        // A turn's bucket keys share the plugin's slot: they are written first, in
        // one script, so a failed check there leaves nothing written.
        let (bucket_writes, value_writes): (Vec<&ValueWrite>, Vec<&ValueWrite>) =
            commit.values.iter().partition(|w| w.name.is_bucket_key());
        if !bucket_writes.is_empty() {
            let call = values_invocation(
                &self.scripts.commit,
                ns,
                &[],
                bucket_writes.iter().copied(),
                None,
                None,
            );
            match self.invoke::<i64>(&call).await? {
                0 => written.push("bucket keys".to_owned()),
                _ => return Err(StoreError::Conflict),
            }
        }
        let refused = |written: &[String], part: &str| {
            if written.is_empty() {
                return StoreError::Conflict;
            }
            tracing::error!(
                written = ?written,
                refused = part,
                "a multi-part commit on the cluster was refused after its first parts"
            );
            StoreError::Internal(format!(
                "the turn was partly written ({}) before {part} changed; not retried",
                written.join(", ")
            ))
        };
        // The index entries to write: per bucket of the session index, and values.
        let mut buckets: BTreeMap<u32, Vec<(&str, i64, i64)>> = BTreeMap::new();
        let mut values = Vec::new();
        for s in &commit.sessions {
            let mut call = self.scripts.session.prepare_invoke();
            session_keys(&mut call, ns, s);
            call.arg(&now);
            session_args(&mut call, s);
            let reply: redis::Value = self.invoke(&call).await?;
            let part = format!("session {:?}", s.session.as_str());
            let (p1, p2, growth): (i64, i64, i64) = match reply {
                redis::Value::Int(-1) => return Err(refused(&written, &part)),
                other => redis::from_redis_value(other)
                    .map_err(|e| StoreError::Internal(format!("unexpected reply: {e}")))?,
            };
            let clear = if s.clear { "1" } else { "0" };
            ledger.extend(
                [
                    "s",
                    &ns.state_key(&s.session),
                    &ns.history_key(&s.session),
                    clear,
                    &growth.to_string(),
                    &p1.to_string(),
                    &p2.to_string(),
                ]
                .map(|a| a.as_bytes().to_vec()),
            );
            if let Some(record) = &s.idempotency {
                let key = ns.idempotency_key(&s.session, &record.key);
                let size = entry_size(&key, record.record.len());
                let expires = now_ms() + record.ttl.as_millis().max(1);
                ledger.extend(
                    ["o", &key, &size.to_string(), &expires.to_string()]
                        .map(|a| a.as_bytes().to_vec()),
                );
            }
            buckets
                .entry(index_bucket(&s.session))
                .or_default()
                .push((s.session.as_str(), p1, p2));
            written.push(part);
        }
        for write in value_writes {
            let name = &write.name;
            let mut call = self.scripts.value.prepare_invoke();
            call.key(ns.value_key(name)).arg(&now).arg(name.as_str());
            value_args(&mut call, write);
            let reply: redis::Value = self.invoke(&call).await?;
            let part = format!("value {:?}", name.as_str());
            let (score, len): (String, usize) = match reply {
                redis::Value::Int(-1) => return Err(refused(&written, &part)),
                other => redis::from_redis_value(other)
                    .map_err(|e| StoreError::Internal(format!("unexpected reply: {e}")))?,
            };
            let key = ns.value_key(name);
            let size = if score == "del" {
                0
            } else {
                entry_size(&key, len)
            };
            ledger.extend(["o", &key, &size.to_string(), &score].map(|a| a.as_bytes().to_vec()));
            values.push((name.as_str(), score));
            written.push(part);
        }
        // The turn is written; the ledger and the indexes only count and list it. If
        // the ledger's update fails, what was written is not counted until its entries
        // are written again (logged); if an index's does, the next commit of the
        // session puts it back, and listing never shows a gone one.
        if !ledger.is_empty() {
            let mut call = self.scripts.usage_update.prepare_invoke();
            usage_keys(&mut call, ns);
            call.arg(&now).arg(ledger);
            if let Err(e) = self.invoke::<i64>(&call).await {
                tracing::warn!(error = %e, "usage ledger not updated after a commit");
            }
        }
        for (bucket, entries) in buckets {
            let mut call = self.scripts.index.prepare_invoke();
            call.key(ns.index_bucket_names_key(bucket))
                .key(ns.index_bucket_expiry_key(bucket))
                .arg(&now);
            for (member, p1, p2) in entries {
                call.arg(member).arg(p1).arg(p2);
            }
            if let Err(e) = self.invoke::<i64>(&call).await {
                tracing::warn!(error = %e, "session index not updated after a commit");
            }
        }
        if !values.is_empty() {
            let mut call = self.scripts.value_index.prepare_invoke();
            call.key(ns.index_values_key())
                .key(ns.index_bucket_keys_key())
                .arg(&now);
            for (member, score) in values {
                call.arg(member).arg(score);
            }
            if let Err(e) = self.invoke::<i64>(&call).await {
                tracing::warn!(error = %e, "value index not updated after a commit");
            }
        }
        Ok(())
    }

    /// Refuses a commit that would go over the namespace's quota, checked in the
    /// plugin's slot before any part is written. The sessions' growth is bounded
    /// from above (what they add, ignoring what they free, which only their own
    /// slots know), so near its quota a plugin must delete before it rewrites.
    /// Concurrent commits are checked against the same count: together they can go
    /// over by at most what the others add (each bounded by the turn's write
    /// budget), until a later commit is refused.
    async fn check_quota(
        &self,
        ns: &Namespace,
        commit: &Commit,
        now: &str,
    ) -> Result<(), StoreError> {
        let Some(quota) = commit.quota else {
            return Ok(());
        };
        if quota.sessions.is_none() && quota.bytes.is_none() {
            return Ok(());
        }
        let mut added: u64 = 0;
        let mut creating = Vec::new();
        let mut others: Vec<(String, u64)> = Vec::new();
        for s in &commit.sessions {
            let put = match &s.state {
                StateChange::Put { value, .. } => Some(value.len()),
                _ => None,
            };
            let appended: usize = s.append.iter().map(Vec::len).sum();
            if put.is_some() || !s.append.is_empty() {
                let (state, history) = (ns.state_key(&s.session), ns.history_key(&s.session));
                added += (put.unwrap_or(0) + appended + state.len() + history.len()) as u64
                    + ENTRY_OVERHEAD;
                creating.push(state);
            }
            if let Some(record) = &s.idempotency {
                let key = ns.idempotency_key(&s.session, &record.key);
                let size = entry_size(&key, record.record.len());
                others.push((key, size));
            }
        }
        for write in &commit.values {
            let key = ns.value_key(&write.name);
            let size = match &write.change {
                ValueChange::Set(value, _) => entry_size(&key, value.len()),
                ValueChange::Add(..) => entry_size(&key, 20),
                ValueChange::Remove => 0,
            };
            others.push((key, size));
        }
        let mut call = self.scripts.usage_check.prepare_invoke();
        usage_keys(&mut call, ns);
        call.arg(now)
            .arg(limit_arg(quota.sessions))
            .arg(limit_arg(quota.bytes))
            .arg(added)
            .arg(creating.len())
            .arg(creating);
        for (key, size) in others {
            call.arg(key).arg(size);
        }
        match self.invoke::<i64>(&call).await? {
            -2 => Err(quota.sessions_exceeded()),
            -3 => Err(quota.bytes_exceeded()),
            _ => Ok(()),
        }
    }

    /// Up to `limit` session names after `cursor` from every bucket of the session
    /// index, merged in order, and from the one index written before the buckets
    /// (its entries go as they expire; a session written since is in both).
    pub(super) async fn bucket_candidates(
        &self,
        ns: &Namespace,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut indexes: Vec<(String, String)> = (0..INDEX_BUCKETS)
            .map(|b| (ns.index_bucket_names_key(b), ns.index_bucket_expiry_key(b)))
            .collect();
        indexes.push((ns.index_names_key(), ns.index_expiry_key()));
        let mut merged = Vec::new();
        for (names, expiry) in &indexes {
            merged.extend(self.index_candidates(names, expiry, cursor, limit).await?);
        }
        merged.sort_unstable();
        merged.dedup();
        merged.truncate(limit as usize);
        Ok(merged)
    }
}

/// The bytes the ledger counts for an entry at `key` holding `len` payload bytes.
fn entry_size(key: &str, len: usize) -> u64 {
    (key.len() + len) as u64 + ENTRY_OVERHEAD
}
