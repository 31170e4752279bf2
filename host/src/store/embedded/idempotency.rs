//! Idempotency claims and records in the embedded store: a table of records that
//! expire, with an index by time that commits and claims prune.

use std::time::Duration;

use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::*;
use crate::error::StoreError;
use crate::keys::{Name, Namespace};

/// The key of record `key` of `session`: `ns \0 session \0 key` (neither a session
/// id nor an idempotency key holds a NUL).
pub(super) fn record_key(ns: &Namespace, session: &Name, key: &str) -> Vec<u8> {
    let mut k = super::tables::key(ns, session.as_str());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn expiry_row(expires: u64, k: &[u8]) -> Vec<u8> {
    let mut row = expires.to_be_bytes().to_vec();
    row.extend_from_slice(k);
    row
}

/// The idempotency tables of one write transaction.
pub(super) struct Records<'t> {
    records: Table<'t, &'static [u8], (u64, &'static [u8])>,
    expiry: Table<'t, &'static [u8], ()>,
    now: u64,
}

impl<'t> Records<'t> {
    pub(super) fn open(txn: &'t WriteTransaction, now: u64) -> Result<Self, StoreError> {
        Ok(Self {
            records: txn.open_table(IDEMPOTENCY).map_err(internal)?,
            expiry: txn.open_table(IDEMPOTENCY_EXPIRY).map_err(internal)?,
            now,
        })
    }

    /// The live record at `k`.
    pub(super) fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.records.get(k).map_err(internal)?.and_then(|row| {
            let (expires, record) = row.value();
            (expires > self.now).then(|| record.to_vec())
        }))
    }

    /// Stores `record` at `k` for `ttl`.
    pub(super) fn put(&mut self, k: &[u8], record: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.remove(k)?;
        let expires = at(self.now, ttl);
        self.records
            .insert(k, (expires, record))
            .map_err(internal)?;
        self.expiry
            .insert(expiry_row(expires, k).as_slice(), ())
            .map_err(internal)?;
        Ok(())
    }

    /// Removes the record at `k`, live or not.
    pub(super) fn remove(&mut self, k: &[u8]) -> Result<(), StoreError> {
        let old = self.records.remove(k).map_err(internal)?;
        if let Some(row) = old {
            let (expires, _) = row.value();
            self.expiry
                .remove(expiry_row(expires, k).as_slice())
                .map_err(internal)?;
        }
        Ok(())
    }

    /// Removes up to [`PRUNE_BATCH`] expired records.
    pub(super) fn prune(&mut self) -> Result<(), StoreError> {
        let end = expiry_row(self.now.saturating_add(1), b"");
        let mut gone = Vec::new();
        for row in self
            .expiry
            .range(..end.as_slice())
            .map_err(internal)?
            .take(PRUNE_BATCH)
        {
            let (row, _) = row.map_err(internal)?;
            gone.push(row.value()[8..].to_vec());
        }
        for k in gone {
            self.remove(&k)?;
        }
        Ok(())
    }
}
