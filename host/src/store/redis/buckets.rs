//! The keys of a `wasi:keyvalue` bucket on Redis: a page of the bucket keys' index
//! (one sorted set per plugin, in the slot of its other indexes), never a scan of
//! the database.

use super::RedisStore;
use super::scripts::now_ms;
use crate::error::StoreError;
use crate::keys::{Namespace, bucket_prefix};
use crate::store::KeyPage;

impl RedisStore {
    /// See [`crate::store::StateStore::list_bucket`].
    pub(super) async fn bucket_page(
        &self,
        ns: &Namespace,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, StoreError> {
        let prefix = bucket_prefix(bucket);
        let min = match after {
            Some(key) => format!("({prefix}{key}"),
            None => format!("[{prefix}"),
        };
        // The names of this bucket sort before the prefix with its last \x01 made \x02.
        let max = format!("(\x01{bucket}\x02");
        let mut call = self.scripts.bucket_keys.prepare_invoke();
        call.key(ns.index_bucket_keys_key())
            .key(ns.index_values_key())
            .arg(now_ms().to_string())
            .arg(min)
            .arg(max)
            .arg(limit.max(1));
        let reply: Vec<redis::Value> = self.invoke(&call).await?;
        let mut reply = reply.into_iter();
        let text = |v: Option<redis::Value>| -> Result<String, StoreError> {
            let v = v.ok_or_else(|| StoreError::Internal("short list-keys reply".into()))?;
            redis::from_redis_value(v)
                .map_err(|e| StoreError::Internal(format!("unexpected list-keys reply: {e}")))
        };
        let last = text(reply.next())?;
        let exhausted = text(reply.next())? == "1";
        let keys = reply
            .map(|name| {
                let name = text(Some(name))?;
                Ok(name.strip_prefix(&prefix).unwrap_or(&name).to_owned())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let cursor = match (exhausted, last.strip_prefix(&prefix)) {
            (false, Some(key)) => Some(key.to_owned()),
            _ => None,
        };
        Ok(KeyPage { keys, cursor })
    }
}
