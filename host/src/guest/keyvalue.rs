//! The host side of the standard `wasi:keyvalue@0.2.0-draft2` interfaces (store,
//! atomics, batch), served from the plugin's namespace through the turn, like
//! `agent-state`.
//!
//! A bucket is a set of plugin-wide values: key `k` of bucket `b` is the value
//! named `\x01b\x01k` ([`Name::bucket_key`]), so the plugin's value limits, its
//! isolation and the store's layout (cluster slots included) hold as they do for
//! `agent-state` values, and a bucket never meets an `agent-state` key. Reads see
//! the turn's own writes; writes commit with the turn, all or nothing; a write
//! expires the plugin's default TTL after it (never without one). An increment
//! adds at commit; a swap commits only if the value the turn read is still stored,
//! otherwise the turn runs again: concurrent turns lose no update.
//!
//! A guest mistake (a bad key, a value over the limit, a bucket the operator does
//! not allow) is an `error` answer, never a trap.

use wasmtime::component::{HasData, Resource, ResourceTable};

use self::generated::wasi::keyvalue::{atomics, batch, store};
use crate::error::{StateError, StoreError};
use crate::guest::state::StateCtx;
use crate::store::keys::{Name, check_bucket, check_name};

/// Host-side bindings of `wasi:keyvalue@0.2.0-draft2` (`wit/deps/keyvalue/`), whose
/// resources are the host's own types (above).
pub(crate) mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::KvError,
        },
    });
}

/// An open bucket: its name, checked against the operator's list when opened.
pub struct Bucket {
    name: String,
}

/// A compare-and-swap in progress: the value the turn saw when it began.
pub struct Cas {
    key: Name,
    seen: Option<Vec<u8>>,
}

/// Why a `wasi:keyvalue` call did not happen.
pub(crate) enum KvError {
    /// The operator does not let the plugin open this bucket.
    AccessDenied,
    /// Bad input, a limit, or the store.
    State(StateError),
    /// A host fault (a resource handle the host does not know): traps.
    Trap(wasmtime::Error),
}

impl From<StateError> for KvError {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

impl From<wasmtime::component::ResourceTableError> for KvError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        Self::Trap(e.into())
    }
}

/// What the `wasi:keyvalue` calls of a turn use: the instance's resources and the
/// turn's state.
pub(crate) struct KeyValue<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) state: &'a mut StateCtx,
}

/// Names [`KeyValue`] for the linker.
pub(crate) struct KeyValueData;

impl HasData for KeyValueData {
    type Data<'a> = KeyValue<'a>;
}

type Result<T, E = KvError> = std::result::Result<T, E>;

impl KeyValue<'_> {
    fn bucket(&self, bucket: &Resource<Bucket>) -> Result<String> {
        Ok(self.table.get(bucket)?.name.clone())
    }

    fn key(&self, bucket: &Resource<Bucket>, key: &str) -> Result<Name> {
        Ok(Name::bucket_key(&self.table.get(bucket)?.name, key)?)
    }

    /// Refuses a list longer than the plugin's `max_items_per_call`.
    fn check_count(&self, n: usize) -> Result<()> {
        let max = self.state.turn.scope().config.limits.max_items_per_call;
        if n > max as usize {
            return Err(StateError::QuotaExceeded(format!("at most {max} keys per call")).into());
        }
        Ok(())
    }

    /// A batch's keys, all checked before any is used.
    fn keys(&self, bucket: &Resource<Bucket>, keys: &[String]) -> Result<Vec<Name>> {
        self.check_count(keys.len())?;
        keys.iter().map(|k| self.key(bucket, k)).collect()
    }

    fn wit_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        match err {
            KvError::AccessDenied => Ok(store::Error::AccessDenied),
            KvError::Trap(e) => Err(e),
            KvError::State(e) => {
                self.state.note_refusal(&e);
                Ok(store::Error::Other(match e {
                    StateError::Store(StoreError::Unavailable(reason)) => {
                        format!("the store is unavailable: {reason}")
                    }
                    e => e.to_string(),
                }))
            }
        }
    }
}

impl store::Host for KeyValue<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>> {
        check_bucket(&identifier)?;
        let allowed = &self.state.turn.scope().config.buckets;
        if allowed
            .as_ref()
            .is_some_and(|list| !list.contains(&identifier))
        {
            return Err(KvError::AccessDenied);
        }
        Ok(self.table.push(Bucket { name: identifier })?)
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        self.wit_error(err)
    }
}

impl store::HostBucket for KeyValue<'_> {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>> {
        let key = self.key(&bucket, &key)?;
        Ok(self.state.turn.get(&key).await?)
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<()> {
        let key = self.key(&bucket, &key)?;
        self.state.check_size(value.len())?;
        Ok(self.state.turn.bucket_set(&key, value).await?)
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<()> {
        let key = self.key(&bucket, &key)?;
        self.state.turn.remove(&key).await?;
        Ok(())
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool> {
        let key = self.key(&bucket, &key)?;
        Ok(self.state.turn.exists(&key).await?)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse> {
        let name = self.bucket(&bucket)?;
        if let Some(cursor) = &cursor {
            check_name("cursor", cursor)?;
        }
        let limit = self.state.turn.scope().config.limits.max_items_per_call;
        let page = self
            .state
            .turn
            .bucket_keys(&name, cursor.as_deref(), limit)
            .await?;
        Ok(store::KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValue<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64> {
        let key = self.key(&bucket, &key)?;
        Ok(self.state.turn.bucket_increment(&key, delta).await?)
    }

    async fn swap(
        &mut self,
        cas: Resource<atomics::Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { key, seen } = self.table.delete(cas)?;
        let swapped = match self.state.check_size(value.len()) {
            Ok(()) => self.state.turn.bucket_swap(&key, &seen, value).await,
            Err(e) => Err(e),
        };
        Ok(match swapped {
            Ok(Ok(())) => Ok(()),
            Ok(Err(now)) => {
                let fresh = self.table.push(Cas { key, seen: now })?;
                Err(atomics::CasError::CasFailed(fresh))
            }
            Err(e) => Err(atomics::CasError::StoreError(self.wit_error(e.into())?)),
        })
    }
}

impl atomics::HostCas for KeyValue<'_> {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Resource<Cas>> {
        let key = self.key(&bucket, &key)?;
        let seen = self.state.turn.get(&key).await?;
        Ok(self.table.push(Cas { key, seen })?)
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>> {
        Ok(self.table.get(&cas)?.seen.clone())
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValue<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let names = self.keys(&bucket, &keys)?;
        self.state.turn.read_values(&names).await?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, name) in keys.into_iter().zip(names) {
            let value = self.state.turn.get(&name).await?;
            out.push((key, value));
        }
        Ok(out)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        self.check_count(key_values.len())?;
        // Every key and size is checked before anything is staged.
        let mut names = Vec::with_capacity(key_values.len());
        let mut values = Vec::with_capacity(key_values.len());
        for (key, value) in key_values {
            self.state.check_size(value.len())?;
            names.push(self.key(&bucket, &key)?);
            values.push(value);
        }
        self.state.turn.read_values(&names).await?;
        for (name, value) in names.iter().zip(values) {
            self.state.turn.bucket_set(name, value).await?;
        }
        Ok(())
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<()> {
        let names = self.keys(&bucket, &keys)?;
        self.state.turn.read_values(&names).await?;
        for name in names {
            self.state.turn.remove(&name).await?;
        }
        Ok(())
    }
}
