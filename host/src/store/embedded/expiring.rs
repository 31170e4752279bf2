//! Records that expire in the embedded store (idempotency claims and records,
//! buffered stream events): one table, with an index by time that writes prune.

use std::time::Duration;

use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};

use super::tables::*;
use super::usage::{Ledger, RECORD};
use crate::error::StoreError;
use crate::store::keys::{Name, Namespace};

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

/// The key of event `seq` of stream `id` of `session` (the `\x01` keeps it apart
/// from idempotency keys, which are printable).
pub(super) fn event_key(ns: &Namespace, session: &Name, id: &str, seq: u64) -> Vec<u8> {
    let mut k = stream_prefix(ns, session, id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// What every event key of stream `id` of `session` starts with.
pub(super) fn stream_prefix(ns: &Namespace, session: &Name, id: &str) -> Vec<u8> {
    let mut k = super::tables::key(ns, session.as_str());
    k.push(0);
    k.push(1);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k
}

/// The live records whose keys are in `from..to`, in key order.
pub(super) fn live_range(
    table: &impl ReadableTable<&'static [u8], (u64, &'static [u8])>,
    from: &[u8],
    to: &[u8],
    now: u64,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = Vec::new();
    for row in table.range(from..to).map_err(internal)? {
        let (_, value) = row.map_err(internal)?;
        let (expires, record) = value.value();
        if expires > now {
            out.push(record.to_vec());
        }
    }
    Ok(out)
}

/// The expiring tables of one write transaction.
pub(super) struct Records<'t> {
    records: Table<'t, &'static [u8], (u64, &'static [u8])>,
    expiry: Table<'t, &'static [u8], ()>,
    now: u64,
}

impl<'t> Records<'t> {
    pub(super) fn open(txn: &'t WriteTransaction, now: u64) -> Result<Self, StoreError> {
        Ok(Self {
            records: txn.open_table(EXPIRING).map_err(internal)?,
            expiry: txn.open_table(EXPIRING_BY_TIME).map_err(internal)?,
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

/// Appends `events` to the buffer of stream `id` of `session` (its keys start with
/// `prefix`), counted in the usage ledger; one transaction, not fsynced: a
/// stream's buffer is a convenience for reconnects.
pub(super) fn push_events(
    db: &Database,
    ns: &Namespace,
    session: &Name,
    id: &str,
    prefix: &[u8],
    events: &[Vec<u8>],
    ttl: Duration,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(internal)?;
    txn.set_durability(Durability::None).map_err(internal)?;
    {
        let now = now_ms();
        let (_, end) = prefixed(prefix);
        let next = {
            let table = txn.open_table(EXPIRING).map_err(internal)?;
            let last = table
                .range(prefix..end.as_slice())
                .map_err(internal)?
                .next_back();
            match last {
                Some(row) => {
                    let (k, _) = row.map_err(internal)?;
                    let k = k.value();
                    u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or([0; 8])) + 1
                }
                None => 0,
            }
        };
        let mut records = Records::open(&txn, now)?;
        for (i, event) in events.iter().enumerate() {
            let k = event_key(ns, session, id, next + i as u64);
            records.put(&k, event, ttl)?;
        }
        records.prune()?;
        let bytes: usize = events.iter().map(Vec::len).sum();
        let mut ledger = Ledger::open(&txn, now)?;
        ledger.add(ns, RECORD, prefix, bytes as u64, at(now, ttl))?;
    }
    txn.commit().map_err(internal)
}

/// Removes every event of the stream whose keys start with `prefix`, and its
/// count in the ledger.
pub(super) fn drop_events(
    txn: &redb::WriteTransaction,
    ns: &Namespace,
    prefix: &[u8],
) -> Result<(), StoreError> {
    let now = now_ms();
    let (_, end) = prefixed(prefix);
    let keys: Vec<Vec<u8>> = {
        let table = txn.open_table(EXPIRING).map_err(internal)?;
        let rows = table.range(prefix..end.as_slice()).map_err(internal)?;
        rows.map(|row| row.map(|(k, _)| k.value().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(internal)?
    };
    let mut records = Records::open(txn, now)?;
    for k in keys {
        records.remove(&k)?;
    }
    Ledger::open(txn, now)?.put(ns, RECORD, prefix, 0, 0)
}
