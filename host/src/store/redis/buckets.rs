//! `wasi:keyvalue` buckets on Redis: several values in one `MGET`, and a page of a
//! bucket's keys from the bucket keys' index (one sorted set per plugin, in the
//! slot of its other indexes), never a scan of the database.

use super::RedisStore;
use super::connection::Conn;
use super::scripts::now_ms;
use crate::error::StoreError;
use crate::store::KeyPage;
use crate::store::keys::{Name, Namespace, bucket_prefix};

impl RedisStore {
    /// See [`crate::store::StateStore::get_many`]: one `MGET`, except on a cluster
    /// for keys that do not share a slot (only a bucket's keys share the plugin's):
    /// one each.
    pub(super) async fn values_of(
        &self,
        ns: &Namespace,
        keys: &[Name],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let one_slot =
            !matches!(self.conn, Conn::Cluster(_)) || keys.iter().all(Name::is_bucket_key);
        let size = if one_slot { keys.len().max(1) } else { 1 };
        let mut values = Vec::with_capacity(keys.len());
        for group in keys.chunks(size) {
            let mut cmd = redis::cmd("MGET");
            for key in group {
                cmd.arg(ns.value_key(key));
            }
            values.extend(self.query::<Vec<Option<Vec<u8>>>>(&cmd).await?);
        }
        Ok(values)
    }

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
