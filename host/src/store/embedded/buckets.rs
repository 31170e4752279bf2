//! A `wasi:keyvalue` bucket in the embedded store: several values in one read,
//! and its keys as a range of the values table, whose keys sort by name within
//! the namespace.

use super::EmbeddedStore;
use super::tables::{internal, key, live, value_of};
use crate::error::StoreError;
use crate::store::KeyPage;
use crate::store::keys::{Name, Namespace, bucket_prefix};

impl EmbeddedStore {
    /// See [`crate::store::StateStore::get_many`]: one read transaction.
    pub(super) async fn values_of(
        &self,
        ns: &Namespace,
        keys: &[Name],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| key(ns, k.as_str())).collect();
        self.read(move |r| keys.iter().map(|k| value_of(&r.values, k, r.now)).collect())
            .await
    }

    /// See [`crate::store::StateStore::list_bucket`].
    pub(super) async fn bucket_page(
        &self,
        ns: &Namespace,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, StoreError> {
        let prefix = key(ns, &bucket_prefix(bucket));
        let mut lo = prefix.clone();
        lo.extend_from_slice(after.unwrap_or("").as_bytes());
        // The names of this bucket sort before the prefix with its last \x01 made \x02.
        let hi = key(ns, &format!("\x01{bucket}\x02"));
        let limit = limit.max(1) as usize;
        self.read(move |r| {
            let mut keys = Vec::new();
            let mut more = false;
            let rows = r
                .values
                .range(lo.as_slice()..hi.as_slice())
                .map_err(internal)?;
            for row in rows {
                let (k, v) = row.map_err(internal)?;
                if k.value() == lo.as_slice() || !live(v.value().0, r.now) {
                    continue;
                }
                if keys.len() == limit {
                    more = true;
                    break;
                }
                let name = &k.value()[prefix.len()..];
                keys.push(String::from_utf8_lossy(name).into_owned());
            }
            let cursor = more.then(|| keys.last().cloned()).flatten();
            Ok(KeyPage { keys, cursor })
        })
        .await
    }
}
