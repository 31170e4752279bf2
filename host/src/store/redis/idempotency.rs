//! Idempotency claims on Redis (a plain `SET NX GET` claims, a small script gives a
//! claim back, and the commit scripts replace it with the turn's record), and the
//! buffered events of streamed turns (a list per stream, with a TTL).

use std::time::Duration;

use super::RedisStore;
use super::scripts::ms;
use crate::error::StoreError;
use crate::keys::{Name, Namespace};

impl RedisStore {
    pub(super) async fn claim(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // Redis 7: with NX, GET answers the value that stopped the write (nil if it
        // was written).
        self.query(
            redis::cmd("SET")
                .arg(ns.idempotency_key(session, key))
                .arg(claim)
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(ms(ttl)),
        )
        .await
    }

    pub(super) async fn release(
        &self,
        ns: &Namespace,
        session: &Name,
        key: &str,
        claim: &[u8],
    ) -> Result<(), StoreError> {
        let mut call = self.scripts.release.prepare_invoke();
        call.key(ns.idempotency_key(session, key)).arg(claim);
        let _: i64 = self.invoke(&call).await?;
        Ok(())
    }

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
        let mut pipe = redis::pipe();
        pipe.cmd("RPUSH").arg(&key).arg(events).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ms(ttl)).ignore();
        self.pipe::<()>(&pipe).await
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
}
