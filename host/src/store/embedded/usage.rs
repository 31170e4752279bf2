//! The embedded store's usage ledger (see `store::Quota`): the bytes of every
//! entry a namespace keeps and when it expires, their sum and the live sessions.
//!
//! An entry is named by a kind byte and its name: `s` a session (state, history,
//! kept versions), `v` a plugin-wide value, `r` an idempotency record or a stream's
//! buffer (by its record key). A commit applies its writes, records their new
//! sizes here, and is refused (its transaction dropped) if it grew the namespace
//! past its quota even after expired entries were pruned.

use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::*;
use crate::error::StoreError;
use crate::store::keys::Namespace;
use crate::store::{ENTRY_OVERHEAD, Quota, Usage};

/// The kinds of entries.
pub(super) const SESSION: u8 = b's';
pub(super) const VALUE: u8 = b'v';
pub(super) const RECORD: u8 = b'r';

/// How many expired entries a commit that would go over prunes first.
const PRUNE_BEFORE_REFUSING: usize = 1000;

/// The bytes an entry named `name` with `payload` bytes counts.
pub(super) fn entry_size(name: &[u8], payload: u64) -> u64 {
    payload + name.len() as u64 + ENTRY_OVERHEAD
}

fn entry_key(ns: &Namespace, kind: u8, name: &[u8]) -> Vec<u8> {
    let mut k = ns_prefix(ns);
    k.push(kind);
    k.extend_from_slice(name);
    k
}

/// The ledger's tables in one write transaction.
pub(super) struct Ledger<'t> {
    entries: Table<'t, &'static [u8], (u64, u64)>,
    by_time: Table<'t, &'static [u8], ()>,
    totals: Table<'t, &'static [u8], (u64, u64)>,
    now: u64,
}

impl<'t> Ledger<'t> {
    pub(super) fn open(txn: &'t WriteTransaction, now: u64) -> Result<Self, StoreError> {
        Ok(Self {
            entries: txn.open_table(USAGE).map_err(internal)?,
            by_time: txn.open_table(USAGE_BY_TIME).map_err(internal)?,
            totals: txn.open_table(USAGE_TOTALS).map_err(internal)?,
            now,
        })
    }

    /// The bytes and sessions recorded for the namespace (expired entries
    /// included until they are pruned).
    pub(super) fn totals(&self, ns: &Namespace) -> Result<Usage, StoreError> {
        let row = self.totals.get(ns.base().as_bytes()).map_err(internal)?;
        let (bytes, sessions) = row.map_or((0, 0), |r| r.value());
        Ok(Usage { sessions, bytes })
    }

    /// The bytes the entry counts while it lives: 0 if absent or expired.
    pub(super) fn live(&self, ns: &Namespace, kind: u8, name: &[u8]) -> Result<u64, StoreError> {
        let row = self
            .entries
            .get(entry_key(ns, kind, name).as_slice())
            .map_err(internal)?;
        Ok(row
            .map(|r| r.value())
            .filter(|&(_, expires)| live(expires, self.now))
            .map_or(0, |(bytes, _)| bytes))
    }

    /// Records the entry's bytes and expiry (0: never); 0 bytes removes it.
    pub(super) fn put(
        &mut self,
        ns: &Namespace,
        kind: u8,
        name: &[u8],
        bytes: u64,
        expires: u64,
    ) -> Result<(), StoreError> {
        let k = entry_key(ns, kind, name);
        let old = self.entries.remove(k.as_slice()).map_err(internal)?;
        let old = old.map(|r| r.value());
        if let Some((_, was)) = old
            && was != 0
        {
            self.by_time
                .remove(time_key(ns, was, &k).as_slice())
                .map_err(internal)?;
        }
        let mut totals = self.totals(ns)?;
        let counts_session = kind == SESSION;
        if let Some((was_bytes, _)) = old {
            totals.bytes = totals.bytes.saturating_sub(was_bytes);
            totals.sessions -= u64::from(counts_session && totals.sessions > 0);
        }
        if bytes > 0 {
            self.entries
                .insert(k.as_slice(), (bytes, expires))
                .map_err(internal)?;
            if expires != 0 {
                self.by_time
                    .insert(time_key(ns, expires, &k).as_slice(), ())
                    .map_err(internal)?;
            }
            totals.bytes += bytes;
            totals.sessions += u64::from(counts_session);
        }
        self.set_totals(ns, totals)
    }

    /// Adds `bytes` to the entry (created with its name's bytes if absent or
    /// expired), which now expires at `expires`.
    pub(super) fn add(
        &mut self,
        ns: &Namespace,
        kind: u8,
        name: &[u8],
        bytes: u64,
        expires: u64,
    ) -> Result<(), StoreError> {
        let held = match self.live(ns, kind, name)? {
            0 => entry_size(name, 0),
            held => held,
        };
        self.put(ns, kind, name, held + bytes, expires)
    }

    /// Removes up to `n` expired entries of the namespace.
    pub(super) fn prune(&mut self, ns: &Namespace, n: usize) -> Result<(), StoreError> {
        let lo = ns_prefix(ns);
        let hi = time_key(ns, self.now.saturating_add(1), &[]);
        let mut gone = Vec::new();
        for row in self
            .by_time
            .range(lo.as_slice()..hi.as_slice())
            .map_err(internal)?
            .take(n)
        {
            let (k, _) = row.map_err(internal)?;
            gone.push(k.value()[lo.len() + 8..].to_vec());
        }
        for k in gone {
            if let Some((&kind, name)) = k.split_first() {
                self.put(ns, kind, name, 0, 0)?;
            }
        }
        Ok(())
    }

    /// Refuses what a transaction wrote if it grew the namespace from `before` past
    /// `quota`, after pruning expired entries.
    pub(super) fn check(
        &mut self,
        ns: &Namespace,
        quota: &Quota,
        before: Usage,
    ) -> Result<(), StoreError> {
        let over = |u: Usage| {
            let sessions = quota
                .sessions
                .is_some_and(|max| u.sessions > before.sessions && u.sessions > max);
            let bytes = quota
                .bytes
                .is_some_and(|max| u.bytes > before.bytes && u.bytes > max);
            (sessions, bytes)
        };
        if over(self.totals(ns)?) == (false, false) {
            return Ok(());
        }
        self.prune(ns, PRUNE_BEFORE_REFUSING)?;
        match over(self.totals(ns)?) {
            (true, _) => Err(quota.sessions_exceeded()),
            (_, true) => Err(quota.bytes_exceeded()),
            _ => Ok(()),
        }
    }

    fn set_totals(&mut self, ns: &Namespace, totals: Usage) -> Result<(), StoreError> {
        self.totals
            .insert(ns.base().as_bytes(), (totals.bytes, totals.sessions))
            .map_err(internal)?;
        Ok(())
    }
}

/// `ns \0 expires-at (big-endian) entry-key-without-ns`.
fn time_key(ns: &Namespace, expires: u64, entry_key: &[u8]) -> Vec<u8> {
    let mut k = ns_prefix(ns);
    k.extend_from_slice(&expires.to_be_bytes());
    k.extend_from_slice(entry_key.get(ns_prefix(ns).len()..).unwrap_or_default());
    k
}
