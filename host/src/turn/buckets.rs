//! A turn's `wasi:keyvalue` buckets. A bucket's key is a plugin-wide value named by
//! [`Name::bucket_key`], so it is read once, staged and committed with the turn like
//! any value; a write sets it to expire the plugin's default TTL after it (never
//! without one). An increment adds at commit, so concurrent ones all count; a swap
//! relies on the value the turn read: the commit then applies only if the store
//! still holds it, otherwise the turn runs again.

use super::Turn;
use crate::error::StateError;
use crate::store::KeyPage;
use crate::store::keys::Name;

impl Turn {
    /// Sets a bucket's key, to expire the plugin's default TTL from now.
    pub(crate) async fn bucket_set(
        &mut self,
        key: &Name,
        value: Vec<u8>,
    ) -> Result<(), StateError> {
        let ttl = self.scope.config.default_ttl;
        self.set(key, value, ttl).await
    }

    /// Adds `delta` to the integer at `key` (0 when absent) at commit, so concurrent
    /// increments all count; the key then expires like a write. Returns the sum.
    pub(crate) async fn bucket_increment(
        &mut self,
        key: &Name,
        delta: i64,
    ) -> Result<i64, StateError> {
        let ttl = self.scope.config.default_ttl;
        self.add(key, delta, ttl).await
    }

    /// Sets `key` to `value` if the turn still sees `seen` there; otherwise returns
    /// what it sees now.
    pub(crate) async fn bucket_swap(
        &mut self,
        key: &Name,
        seen: &Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<Result<(), Option<Vec<u8>>>, StateError> {
        let now = self.get(key).await?;
        if &now != seen {
            return Ok(Err(now));
        }
        self.write_relying_on_base(key, value).await?;
        Ok(Ok(()))
    }

    /// Sets `key` to `value`, which the turn computed from what it read there: if
    /// that was the stored value (the turn had not written it), the commit expects
    /// the store to still hold it.
    async fn write_relying_on_base(
        &mut self,
        key: &Name,
        value: Vec<u8>,
    ) -> Result<(), StateError> {
        let read_base = self.value(key).await?.change.is_none();
        self.bucket_set(key, value).await?;
        if read_base {
            self.values
                .get_mut(key.as_str())
                .expect("staged above")
                .expect_base = true;
        }
        Ok(())
    }

    /// Up to about `limit` keys of `bucket` after `after`, the turn's own writes
    /// included: the store's page, with the keys this turn created in the range it
    /// covers added and those it deleted left out.
    pub(crate) async fn bucket_keys(
        &mut self,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, StateError> {
        let page = self
            .store
            .list_bucket(&self.scope.ns, bucket, after, limit)
            .await;
        let mut page = self.check(page)?;
        let prefix = crate::store::keys::bucket_prefix(bucket);
        let in_range = |key: &str| {
            after.is_none_or(|a| key > a) && page.cursor.as_deref().is_none_or(|c| key <= c)
        };
        let mut created = Vec::new();
        let mut deleted = Vec::new();
        for stage in self.values.values() {
            let Some(key) = stage.name.as_str().strip_prefix(&prefix) else {
                continue;
            };
            if stage.change.is_none() || !in_range(key) {
                continue;
            }
            match stage.current()? {
                Some(_) => created.push(key.to_owned()),
                None => deleted.push(key.to_owned()),
            }
        }
        page.keys.retain(|k| !deleted.contains(k));
        page.keys.extend(created);
        page.keys.sort_unstable();
        page.keys.dedup();
        Ok(page)
    }
}
