//! Commits and listing on a Redis Cluster, where a script may touch one slot only
//! and a plugin's session index is split into buckets (see `keys`).

use std::collections::BTreeMap;

use super::RedisStore;
use super::scripts::{
    now_ms, session_args, session_keys, usage_keys, value_args, value_op, values_invocation,
};
use super::usage::entry_size;
use crate::error::StoreError;
use crate::store::keys::{INDEX_BUCKETS, Namespace, index_bucket};
use crate::store::{Commit, ValueWrite};

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
        self.check_quota(ns, commit).await?;
        let mut written = Vec::new();
        // A turn's bucket keys share the plugin's slot: they are written first, in
        // one script (which also counts them in the plugin slot's ledger shard), so
        // a failed check there leaves nothing written.
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
        // Per bucket of the session index, its entries and its ledger shard's (see
        // `lua/cluster_index.lua`).
        let mut buckets: BTreeMap<u32, Vec<String>> = BTreeMap::new();
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
            let entries = buckets.entry(index_bucket(&s.session)).or_default();
            entries.extend([
                "s".to_owned(),
                s.session.as_str().to_owned(),
                ns.state_key(&s.session),
                ns.history_key(&s.session),
                if s.clear { "1" } else { "0" }.to_owned(),
                growth.to_string(),
                p1.to_string(),
                p2.to_string(),
            ]);
            if let Some(record) = &s.idempotency {
                let key = ns.idempotency_key(&s.session, &record.key);
                let size = entry_size(&key, record.record.len());
                let expires = now_ms() + record.ttl.as_millis().max(1);
                entries.extend(["o".to_owned(), key, size.to_string(), expires.to_string()]);
            }
            written.push(part);
        }
        for write in value_writes {
            let name = &write.name;
            let key = ns.value_key(name);
            let mut call = self.scripts.value.prepare_invoke();
            call.key(&key).arg(&now).arg(name.as_str());
            value_args(&mut call, write);
            let reply: redis::Value = self.invoke(&call).await?;
            let part = format!("value {:?}", name.as_str());
            let (score, len): (String, usize) = match reply {
                redis::Value::Int(-1) => return Err(refused(&written, &part)),
                other => redis::from_redis_value(other)
                    .map_err(|e| StoreError::Internal(format!("unexpected reply: {e}")))?,
            };
            let size = if score == "del" {
                0
            } else {
                entry_size(&key, len)
            };
            buckets.entry(index_bucket(name)).or_default().extend([
                "o".to_owned(),
                key,
                size.to_string(),
                score.clone(),
            ]);
            values.push((name.as_str(), score));
            written.push(part);
        }
        // Schedules last: a session that conflicted above has scheduled nothing.
        if !commit.schedules.is_empty() {
            match self.commit_schedules(ns, &commit.schedules).await {
                Err(StoreError::Conflict) => {
                    return Err(refused(&written, "a cancelled schedule"));
                }
                other => other?,
            }
        }
        // The turn is written; the indexes and the ledger only list and count it. If
        // an update fails, the next commit of the session or value puts its entries
        // back (until then, listing never shows a gone session, and the ledger does
        // not count what it missed).
        for (bucket, entries) in buckets {
            let mut call = self.scripts.index.prepare_invoke();
            call.key(ns.index_bucket_names_key(bucket))
                .key(ns.index_bucket_expiry_key(bucket));
            usage_keys(&mut call, ns, Some(bucket));
            call.arg(&now).arg(entries);
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
