//! The [`StateStore`] operations on Redis: a session's snapshot and reads in one
//! pipeline each, listing through the session index, and the commit (one script
//! on a standalone server, per slot on a cluster).

use std::time::Duration;

use async_trait::async_trait;

use super::RedisStore;
use super::connection::Conn;
use super::scripts::{commit_invocation, now_ms};
use crate::error::StoreError;
use crate::store::keys::{Name, Namespace};
use crate::store::{
    Claims, Commit, Entry, Finish, KeyPage, ModelCount, Page, Periods, Schedule, Snapshot, Spender,
    StateStore, StoredVersion, Usage,
};

#[async_trait]
impl StateStore for RedisStore {
    async fn snapshot(
        &self,
        ns: &Namespace,
        session: &Name,
        tail: u32,
    ) -> Result<Snapshot, StoreError> {
        let (state, hist) = (ns.state_key(session), ns.history_key(session));
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(&state).arg("v").arg("ver");
        pipe.cmd("LLEN").arg(&hist);
        pipe.cmd("PTTL").arg(&state);
        pipe.cmd("PTTL").arg(&hist);
        type Head = ((Option<Vec<u8>>, Option<u64>), u64, i64, i64);
        let (((value, version), history_len, a, b), tail) = if tail > 0 {
            pipe.cmd("LRANGE").arg(&hist).arg(-i64::from(tail)).arg(-1);
            let (v, len, a, b, items): (_, _, _, _, Vec<Vec<u8>>) = self.pipe(&pipe).await?;
            ((v, len, a, b), items)
        } else {
            (self.pipe::<Head>(&pipe).await?, Vec::new())
        };
        Ok(Snapshot {
            state: value.map(|value| Entry {
                value,
                version: version.unwrap_or(0),
            }),
            history_len,
            tail,
            ttl: session_ttl(a, b),
        })
    }

    async fn load(&self, ns: &Namespace, session: &Name) -> Result<Option<Entry>, StoreError> {
        let (value, version): (Option<Vec<u8>>, Option<u64>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(ns.state_key(session))
                    .arg("v")
                    .arg("ver"),
            )
            .await?;
        Ok(value.map(|value| Entry {
            value,
            version: version.unwrap_or(0),
        }))
    }

    async fn items(
        &self,
        ns: &Namespace,
        session: &Name,
        last: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        if last == 0 {
            return Ok(Vec::new());
        }
        self.query(
            redis::cmd("LRANGE")
                .arg(ns.history_key(session))
                .arg(-i64::from(last))
                .arg(-1),
        )
        .await
    }

    async fn items_from(
        &self,
        ns: &Namespace,
        session: &Name,
        start: u64,
        count: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let (Ok(start), true) = (i64::try_from(start), count > 0) else {
            return Ok(Vec::new());
        };
        self.query(
            redis::cmd("LRANGE")
                .arg(ns.history_key(session))
                .arg(start)
                .arg(start.saturating_add(i64::from(count) - 1)),
        )
        .await
    }

    async fn ttl(&self, ns: &Namespace, session: &Name) -> Result<Option<Duration>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("PTTL").arg(ns.state_key(session));
        pipe.cmd("PTTL").arg(ns.history_key(session));
        let (a, b): (i64, i64) = self.pipe(&pipe).await?;
        Ok(session_ttl(a, b))
    }

    async fn list_sessions(
        &self,
        ns: &Namespace,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let candidates = match self.conn {
            Conn::Cluster(_) => self.bucket_candidates(ns, cursor, limit).await?,
            _ => {
                let (names, expiry) = (ns.index_names_key(), ns.index_expiry_key());
                self.index_candidates(&names, &expiry, cursor, limit)
                    .await?
            }
        };
        let next = (candidates.len() >= limit as usize)
            .then(|| candidates.last().cloned())
            .flatten();
        if candidates.is_empty() {
            return Ok(Page::default());
        }

        // The index may name a session that expired a moment ago or whose last
        // key went away outside a commit: check each one (on a cluster, one call
        // per session, as their keys live in different slots).
        if let Conn::Cluster(_) = self.conn {
            let mut sessions = Vec::new();
            for raw in candidates {
                let Ok(name) = Name::session(raw) else {
                    continue;
                };
                let n: i64 = self
                    .query(
                        redis::cmd("EXISTS")
                            .arg(ns.state_key(&name))
                            .arg(ns.history_key(&name)),
                    )
                    .await?;
                if n > 0 {
                    sessions.push(name.as_str().to_owned());
                }
            }
            return Ok(Page {
                sessions,
                cursor: next,
            });
        }
        let mut pipe = redis::pipe();
        let mut checked = Vec::with_capacity(candidates.len());
        for raw in candidates {
            // Every member was written from a valid `Name`.
            let Ok(name) = Name::session(raw) else {
                continue;
            };
            pipe.cmd("EXISTS")
                .arg(ns.state_key(&name))
                .arg(ns.history_key(&name));
            checked.push(name);
        }
        let exists: Vec<i64> = self.pipe(&pipe).await?;
        let sessions = checked
            .into_iter()
            .zip(exists)
            .filter(|(_, n)| *n > 0)
            .map(|(name, _)| name.as_str().to_owned())
            .collect();
        Ok(Page {
            sessions,
            cursor: next,
        })
    }

    async fn get(&self, ns: &Namespace, key: &Name) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(ns.value_key(key))).await
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
        self.read_usage(ns).await
    }

    async fn count_values(&self, ns: &Namespace) -> Result<u64, StoreError> {
        self.query(
            redis::cmd("ZCOUNT")
                .arg(ns.index_values_key())
                .arg(format!("({}", now_ms()))
                .arg("+inf"),
        )
        .await
    }

    async fn commit(&self, ns: &Namespace, commit: Commit) -> Result<(), StoreError> {
        let commit = &commit;
        if commit.is_empty() {
            return Ok(());
        }
        if let Conn::Cluster(_) = self.conn {
            return self.commit_per_slot(ns, commit).await;
        }
        let call = commit_invocation(&self.scripts.commit, ns, commit);
        let failed: i64 = self
            .call(|mut conn| async move { call.invoke_async(&mut conn).await })
            .await?;
        if let (0, Some((replicas, timeout))) = (failed, self.wait) {
            let acked: u32 = self
                .query(
                    redis::cmd("WAIT")
                        .arg(replicas)
                        .arg(timeout.as_millis().max(1) as u64),
                )
                .await?;
            if acked < replicas {
                tracing::warn!(
                    acked,
                    replicas,
                    "commit not acknowledged by enough replicas"
                );
                return Err(StoreError::Unavailable(format!(
                    "the commit reached {acked} of {replicas} replicas in time"
                )));
            }
        }
        match failed {
            0 => Ok(()),
            -1 => Err(StoreError::QuotaExceeded(format!(
                "at most {} plugin-wide values",
                commit.max_values.unwrap_or_default()
            ))),
            -2 => Err(commit.quota.unwrap_or_default().sessions_exceeded()),
            -3 => Err(commit.quota.unwrap_or_default().bytes_exceeded()),
            -4 => Err(commit.quota.unwrap_or_default().schedules_exceeded()),
            _ => Err(StoreError::Conflict),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
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

    async fn versions(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<StoredVersion>, StoreError> {
        self.read_versions(ns, session).await
    }

    async fn append_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        events: Vec<Vec<u8>>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.push_events(ns, session, id, events, ttl).await
    }

    async fn read_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        from: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.range_events(ns, session, id, from).await
    }

    async fn drop_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
    ) -> Result<(), StoreError> {
        self.drop_stream(ns, session, id).await
    }

    async fn claim_idempotency(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.claim(ns, session, key, claim, ttl).await
    }

    async fn release_idempotency(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
    ) -> Result<(), StoreError> {
        self.release(ns, session, key, claim).await
    }

    fn schedule_buckets(&self) -> u32 {
        self.buckets()
    }

    async fn claim_schedules(
        &self,
        ns: &Namespace,
        bucket: u32,
        lease: Duration,
        limit: u32,
        claim: &str,
    ) -> Result<Claims, StoreError> {
        self.claim_due(ns, bucket, lease, limit, claim).await
    }

    async fn finish_schedule(
        &self,
        ns: &Namespace,
        schedule: &Schedule,
        claim: &str,
        finish: Finish,
    ) -> Result<bool, StoreError> {
        self.finish(ns, schedule, claim, finish).await
    }

    async fn schedule(&self, ns: &Namespace, id: &str) -> Result<Option<Schedule>, StoreError> {
        self.get_schedule(ns, id).await
    }

    async fn session_schedules(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.list_schedules(ns, session).await
    }

    async fn count_schedules(&self, ns: &Namespace) -> Result<u64, StoreError> {
        self.pending_count(ns).await
    }
}

/// A session's TTL from the PTTL of its two keys (-2: no key, -1: no expiry).
fn session_ttl(state: i64, history: i64) -> Option<Duration> {
    if state == -1 || history == -1 || state.max(history) < 0 {
        return None;
    }
    Some(Duration::from_millis(state.max(history).unsigned_abs()))
}
