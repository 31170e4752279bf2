//! Idempotency claims on Redis: a plain `SET NX GET` claims, a small script gives a
//! claim back, and the commit scripts replace it with the turn's record.

use std::time::Duration;

use super::RedisStore;
use super::scripts::ms;
use crate::error::StoreError;
use crate::store::keys::{Name, Namespace};

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
}
