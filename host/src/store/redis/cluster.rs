//! Commits on a Redis Cluster, where a script may touch one slot only.

use super::RedisStore;
use super::scripts::{now_ms, session_args, value_args, value_op};
use crate::error::StoreError;
use crate::keys::Namespace;
use crate::store::Commit;

impl RedisStore {
    /// A commit on a Redis Cluster, where a script may touch one slot only: each
    /// session (its keys share a hash tag) is checked and written atomically by
    /// itself, then each plugin-wide value, then the plugin's indexes.
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
            for (name, change) in &commit.values {
                call.arg(name.as_str()).arg(value_op(change));
            }
            let over: i64 = self.invoke(&call).await?;
            if over == 1 {
                return Err(StoreError::QuotaExceeded(format!(
                    "at most {max} plugin-wide values"
                )));
            }
        }
        let mut written = Vec::new();
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
        let mut index = self.scripts.index.prepare_invoke();
        index
            .key(ns.index_names_key())
            .key(ns.index_expiry_key())
            .key(ns.index_values_key())
            .arg(&now)
            .arg(commit.sessions.len());
        for s in &commit.sessions {
            let mut call = self.scripts.session.prepare_invoke();
            call.key(ns.state_key(&s.session))
                .key(ns.history_key(&s.session))
                .arg(&now);
            session_args(&mut call, s);
            let reply: redis::Value = self.invoke(&call).await?;
            let part = format!("session {:?}", s.session.as_str());
            let (p1, p2): (i64, i64) = match reply {
                redis::Value::Int(-1) => return Err(refused(&written, &part)),
                other => redis::from_redis_value(other)
                    .map_err(|e| StoreError::Internal(format!("unexpected reply: {e}")))?,
            };
            index.arg(s.session.as_str()).arg(p1).arg(p2);
            written.push(part);
        }
        for (name, change) in &commit.values {
            let mut call = self.scripts.value.prepare_invoke();
            call.key(ns.value_key(name)).arg(&now).arg(name.as_str());
            value_args(&mut call, change);
            let reply: redis::Value = self.invoke(&call).await?;
            let part = format!("value {:?}", name.as_str());
            let score: String = match reply {
                redis::Value::Int(-1) => return Err(refused(&written, &part)),
                other => redis::from_redis_value(other)
                    .map_err(|e| StoreError::Internal(format!("unexpected reply: {e}")))?,
            };
            index.arg(name.as_str()).arg(score);
            written.push(part);
        }
        // The turn is written; the index only lists it. If this fails, the next
        // commit of the session puts it back, and listing never shows a gone one.
        if let Err(e) = self.invoke::<i64>(&index).await {
            tracing::warn!(error = %e, "session index not updated after a commit");
        }
        Ok(())
    }
}
