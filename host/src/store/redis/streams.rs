//! The buffered events of streamed turns on Redis: a list per stream under the
//! session's hash tag, with a TTL.

use std::time::Duration;

use super::RedisStore;
use super::connection::Conn;
use super::scripts::{ms, now_ms, usage_keys};
use crate::error::StoreError;
use crate::store::keys::{Name, Namespace};

impl RedisStore {
    pub(super) async fn push_events(
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
        let key = ns.stream_key(session, id);
        let bytes: usize = events.iter().map(Vec::len).sum();
        let mut call = self.scripts.stream_push.prepare_invoke();
        usage_keys(&mut call, ns, self.session_shard(session));
        call.arg(now_ms().to_string())
            .arg(&key)
            .arg(ms(ttl))
            .arg(bytes);
        if let Conn::Cluster(_) = self.conn {
            // The stream and the ledger are in different slots: push, then count.
            let mut pipe = redis::pipe();
            pipe.cmd("RPUSH").arg(&key).arg(events).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ms(ttl)).ignore();
            self.pipe::<()>(&pipe).await?;
        } else {
            call.key(&key);
            for event in &events {
                call.arg(event.as_slice());
            }
        }
        self.invoke::<i64>(&call).await.map(drop)
    }

    pub(super) async fn range_events(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
        from: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        self.query(
            redis::cmd("LRANGE")
                .arg(ns.stream_key(session, id))
                .arg(from)
                .arg(-1),
        )
        .await
    }

    pub(super) async fn drop_stream(
        &self,
        ns: &Namespace,
        session: &Name,
        id: &str,
    ) -> Result<(), StoreError> {
        let key = ns.stream_key(session, id);
        let mut call = self.scripts.stream_drop.prepare_invoke();
        usage_keys(&mut call, ns, self.session_shard(session));
        call.arg(&key);
        if let Conn::Cluster(_) = self.conn {
            // The stream and the ledger are in different slots: delete, then count.
            self.query::<i64>(redis::cmd("DEL").arg(&key)).await?;
        } else {
            call.key(&key);
        }
        self.invoke::<i64>(&call).await.map(drop)
    }
}
