//! One write transaction of the embedded store: checks a commit against what is
//! stored, applies it, and keeps the expiry index and the value count.

use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::*;
use super::usage::{Ledger, SESSION, VALUE, entry_size};
use super::versions::Versions;
use crate::error::StoreError;
use crate::store::keys::{Name, Namespace};
use crate::store::{
    Commit, Expiry, ExpiryChange, SessionCommit, StateChange, ValueChange, ValueCheck,
};

/// The tables of one write transaction.
pub(super) struct Writer<'t> {
    state: Table<'t, &'static [u8], (u64, &'static [u8])>,
    meta: Table<'t, &'static [u8], (u64, u64, u64)>,
    history: Table<'t, &'static [u8], &'static [u8]>,
    expiry: Table<'t, &'static [u8], ()>,
    values: Table<'t, &'static [u8], (u64, &'static [u8])>,
    versions: Versions<'t>,
    /// What the namespace keeps, for its quota.
    pub(super) ledger: Ledger<'t>,
    now: u64,
}

impl<'t> Writer<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            state: txn.open_table(STATE).map_err(internal)?,
            meta: txn.open_table(META).map_err(internal)?,
            history: txn.open_table(HISTORY).map_err(internal)?,
            expiry: txn.open_table(EXPIRY).map_err(internal)?,
            values: txn.open_table(VALUES).map_err(internal)?,
            versions: Versions::open(txn)?,
            ledger: Ledger::open(txn, now_ms())?,
            now: now_ms(),
        })
    }

    /// The live session at `k`, removing it first if it has expired.
    pub(super) fn session(
        &mut self,
        ns: &Namespace,
        name: &str,
        k: &[u8],
    ) -> Result<Option<Meta>, StoreError> {
        let Some(row) = self.meta.get(k).map_err(internal)? else {
            return Ok(None);
        };
        let (expires, start, end) = row.value();
        drop(row);
        let meta = Meta {
            expires,
            start,
            end,
        };
        if live(expires, self.now) {
            return Ok(Some(meta));
        }
        self.remove_session(ns, name, k, &meta)?;
        Ok(None)
    }

    pub(super) fn remove_session(
        &mut self,
        ns: &Namespace,
        name: &str,
        k: &[u8],
        meta: &Meta,
    ) -> Result<(), StoreError> {
        self.state.remove(k).map_err(internal)?;
        self.meta.remove(k).map_err(internal)?;
        self.versions.remove_all(k)?;
        if meta.expires != 0 {
            self.expiry
                .remove(expiry_key(ns, meta.expires, name).as_slice())
                .map_err(internal)?;
        }
        let (lo, hi) = (item_key(k, meta.start), item_key(k, meta.end));
        self.history
            .retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)
            .map_err(internal)?;
        self.ledger.put(ns, SESSION, name.as_bytes(), 0, 0)
    }

    /// Live plugin-wide values of the namespace; removes the expired ones.
    pub(super) fn count_values(&mut self, ns: &Namespace) -> Result<u64, StoreError> {
        let now = self.now;
        let (lo, hi) = prefixed(&ns_prefix(ns));
        self.values
            .retain_in(lo.as_slice()..hi.as_slice(), |_, (expires, _)| {
                live(expires, now)
            })
            .map_err(internal)?;
        let mut n = 0;
        for row in self
            .values
            .range(lo.as_slice()..hi.as_slice())
            .map_err(internal)?
        {
            row.map_err(internal)?;
            n += 1;
        }
        Ok(n)
    }

    /// Removes up to [`PRUNE_BATCH`] expired sessions of the namespace.
    pub(super) fn prune(&mut self, ns: &Namespace) -> Result<(), StoreError> {
        let lo = ns_prefix(ns);
        let hi = expiry_key(ns, self.now.saturating_add(1), "");
        let mut gone = Vec::new();
        for row in self
            .expiry
            .range(lo.as_slice()..hi.as_slice())
            .map_err(internal)?
            .take(PRUNE_BATCH)
        {
            let (k, _) = row.map_err(internal)?;
            let name = &k.value()[lo.len() + 8..];
            gone.push(String::from_utf8_lossy(name).into_owned());
        }
        for name in gone {
            let k = key(ns, &name);
            self.session(ns, &name, &k)?;
        }
        Ok(())
    }

    /// Fails with the reason if a check of the commit does not hold.
    pub(super) fn check(&mut self, ns: &Namespace, commit: &Commit) -> Result<(), StoreError> {
        if let (Some(max), false) = (commit.max_values, commit.values.is_empty()) {
            let mut count = self.count_values(ns)?;
            for write in &commit.values {
                let exists = self
                    .values
                    .get(key(ns, write.name.as_str()).as_slice())
                    .map_err(internal)?
                    .is_some();
                match write.change {
                    ValueChange::Remove if exists => count -= 1,
                    ValueChange::Set(..) | ValueChange::Add(..) if !exists => count += 1,
                    _ => {}
                }
            }
            if count > max {
                return Err(StoreError::QuotaExceeded(format!(
                    "at most {max} plugin-wide values"
                )));
            }
        }
        for s in &commit.sessions {
            let k = key(ns, s.session.as_str());
            let meta = self.session(ns, s.session.as_str(), &k)?;
            if let Some(expected) = s.expect_version {
                let version = match meta {
                    Some(_) => state_of(&self.state, &k)?.map_or(0, |e| e.version),
                    None => 0,
                };
                if version != expected {
                    return Err(StoreError::Conflict);
                }
            }
            if let Some(expected) = s.expect_history_len
                && meta.map_or(0, |m| m.len()) != expected
            {
                return Err(StoreError::Conflict);
            }
        }
        for write in &commit.values {
            let check_add = matches!(write.change, ValueChange::Add(..));
            if !check_add && write.expect.is_none() {
                continue;
            }
            let current = value_of(&self.values, &key(ns, write.name.as_str()), self.now)?;
            let holds = match &write.expect {
                None => true,
                Some(ValueCheck::Absent) => current.is_none(),
                Some(ValueCheck::Equals(bytes)) => current.as_ref() == Some(bytes),
            };
            let adds = match write.change {
                ValueChange::Add(delta, _) => add(current.as_deref(), delta).is_some(),
                _ => true,
            };
            if !(holds && adds) {
                return Err(StoreError::Conflict);
            }
        }
        Ok(())
    }

    pub(super) fn apply_session(
        &mut self,
        ns: &Namespace,
        s: &SessionCommit,
    ) -> Result<(), StoreError> {
        let name = s.session.as_str();
        let k = key(ns, name);
        let before = self.session(ns, name, &k)?;
        if let Some(meta) = &before {
            // Re-added below with its new expiry, if the session lives on.
            if meta.expires != 0 {
                self.expiry
                    .remove(expiry_key(ns, meta.expires, name).as_slice())
                    .map_err(internal)?;
            }
        }
        let mut meta = match before {
            Some(meta) if s.clear => {
                self.remove_session(ns, name, &k, &meta)?;
                Meta::default()
            }
            Some(meta) => meta,
            None => Meta::default(),
        };
        // The session's payload bytes (state, history, kept versions), as counted.
        let counted = self.ledger.live(ns, SESSION, name.as_bytes())?;
        let mut payload = counted.saturating_sub(entry_size(name.as_bytes(), 0));
        let keep = s.keep_versions;
        let old = match s.state {
            StateChange::Keep => None,
            _ => state_of(&self.state, &k)?,
        };
        let old_len = old.as_ref().map_or(0, |e| e.value.len() as u64);
        if keep > 0
            && let Some(old) = &old
        {
            payload += old_len + KEPT_VERSION_BYTES;
            let freed = self.versions.keep(&k, old.version, &old.value, keep)?;
            payload = payload.saturating_sub(freed);
        }
        match &s.state {
            StateChange::Keep => {}
            StateChange::Put { value, version } => {
                self.state
                    .insert(k.as_slice(), (*version, value.as_slice()))
                    .map_err(internal)?;
                payload = payload.saturating_sub(old_len) + value.len() as u64;
            }
            StateChange::Delete => {
                self.state.remove(k.as_slice()).map_err(internal)?;
                payload = payload.saturating_sub(old_len);
            }
        }
        for _ in 0..s.pops.min(meta.len()) {
            meta.end -= 1;
            let gone = self
                .history
                .remove(item_key(&k, meta.end).as_slice())
                .map_err(internal)?;
            payload = payload.saturating_sub(gone.map_or(0, |g| g.value().len() as u64));
        }
        for item in &s.append {
            self.history
                .insert(item_key(&k, meta.end).as_slice(), item.as_slice())
                .map_err(internal)?;
            meta.end += 1;
            payload += item.len() as u64;
        }
        if meta.len() == 0 {
            (meta.start, meta.end) = (0, 0);
        }
        match s.state {
            StateChange::Keep => {}
            StateChange::Put { .. } if keep > 0 => {
                self.versions.written(&k, Some((self.now, meta.len())))?;
            }
            _ => self.versions.written(&k, None)?,
        }
        meta.expires = match s.expiry {
            ExpiryChange::Keep => meta.expires,
            ExpiryChange::Set(Expiry::Never) => 0,
            ExpiryChange::Set(Expiry::After(d)) => at(self.now, d),
            // Like PEXPIRE GT: a session without expiry keeps none.
            ExpiryChange::Extend(d) if meta.expires != 0 => meta.expires.max(at(self.now, d)),
            ExpiryChange::Extend(_) => 0,
        };
        let exists = meta.len() > 0 || self.state.get(k.as_slice()).map_err(internal)?.is_some();
        if exists {
            self.meta
                .insert(k.as_slice(), (meta.expires, meta.start, meta.end))
                .map_err(internal)?;
            if meta.expires != 0 {
                self.expiry
                    .insert(expiry_key(ns, meta.expires, name).as_slice(), ())
                    .map_err(internal)?;
            }
            let size = entry_size(name.as_bytes(), payload);
            self.ledger
                .put(ns, SESSION, name.as_bytes(), size, meta.expires)
        } else {
            self.meta.remove(k.as_slice()).map_err(internal)?;
            self.versions.remove_all(&k)?;
            self.ledger.put(ns, SESSION, name.as_bytes(), 0, 0)
        }
    }

    pub(super) fn apply_value(
        &mut self,
        ns: &Namespace,
        name: &Name,
        change: &ValueChange,
    ) -> Result<(), StoreError> {
        let k = key(ns, name.as_str());
        let member = name.as_str().as_bytes();
        match change {
            ValueChange::Set(value, expiry) => {
                let expires = match expiry {
                    Expiry::Never => 0,
                    Expiry::After(d) => at(self.now, *d),
                };
                self.values
                    .insert(k.as_slice(), (expires, value.as_slice()))
                    .map_err(internal)?;
                let size = entry_size(member, value.len() as u64);
                self.ledger.put(ns, VALUE, member, size, expires)?;
            }
            ValueChange::Remove => {
                self.values.remove(k.as_slice()).map_err(internal)?;
                self.ledger.put(ns, VALUE, member, 0, 0)?;
            }
            ValueChange::Add(delta, refresh) => {
                let (expires, current) = match self.values.get(k.as_slice()).map_err(internal)? {
                    Some(row) if live(row.value().0, self.now) => {
                        (row.value().0, Some(row.value().1.to_vec()))
                    }
                    _ => (0, None),
                };
                let expires = refresh.map_or(expires, |d| at(self.now, d));
                let sum = add(current.as_deref(), *delta).ok_or(StoreError::Conflict)?;
                let sum = sum.to_string();
                self.values
                    .insert(k.as_slice(), (expires, sum.as_bytes()))
                    .map_err(internal)?;
                let size = entry_size(member, sum.len() as u64);
                self.ledger.put(ns, VALUE, member, size, expires)?;
            }
        }
        Ok(())
    }
}

/// What a kept version counts beside its document (when it was written, the
/// history's length then).
const KEPT_VERSION_BYTES: u64 = 16;

/// `current + delta` if `current` is an integer (see [`crate::store::parse_integer`]) or
/// absent, and the sum fits.
pub(super) fn add(current: Option<&[u8]>, delta: i64) -> Option<i64> {
    match current {
        None => Some(delta),
        Some(bytes) => crate::store::parse_integer(bytes)?.checked_add(delta),
    }
}
