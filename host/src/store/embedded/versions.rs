//! Kept state versions in the embedded store (`keep_versions`): the documents a
//! session's commits replaced, and when the current one was written.

use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::*;
use crate::error::StoreError;
use crate::store::StoredVersion;

/// The key of version `version` of the session at `k`.
fn version_key(k: &[u8], version: u64) -> Vec<u8> {
    item_key(k, version)
}

/// The version tables of one write transaction.
pub(super) struct Versions<'t> {
    info: Table<'t, &'static [u8], (u64, u64)>,
    kept: Table<'t, &'static [u8], (u64, u64, &'static [u8])>,
}

impl<'t> Versions<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            info: txn.open_table(STATE_INFO).map_err(internal)?,
            kept: txn.open_table(VERSIONS).map_err(internal)?,
        })
    }

    /// Keeps the replaced document `value` (version `version`) of the session at
    /// `k`, then only the newest `keep`; returns the bytes of those it dropped (each
    /// document and 16 for its times).
    pub(super) fn keep(
        &mut self,
        k: &[u8],
        version: u64,
        value: &[u8],
        keep: u32,
    ) -> Result<u64, StoreError> {
        let (at, len) = self
            .info
            .get(k)
            .map_err(internal)?
            .map_or((0, 0), |row| row.value());
        self.kept
            .insert(version_key(k, version).as_slice(), (at, len, value))
            .map_err(internal)?;
        let (lo, hi) = (version_key(k, 0), version_key(k, u64::MAX));
        let mut count = 0;
        let mut oldest = Vec::new();
        for row in self
            .kept
            .range(lo.as_slice()..=hi.as_slice())
            .map_err(internal)?
            .rev()
        {
            let (key, _) = row.map_err(internal)?;
            count += 1;
            if count > keep {
                oldest.push(key.value().to_vec());
            }
        }
        let mut freed = 0;
        for key in oldest {
            let gone = self.kept.remove(key.as_slice()).map_err(internal)?;
            freed += gone.map_or(0, |g| g.value().2.len() as u64 + 16);
        }
        Ok(freed)
    }

    /// The current document of the session at `k` was written at `at` with
    /// `history_len` items after it (`None`: it is unknown, versions not kept).
    pub(super) fn written(&mut self, k: &[u8], info: Option<(u64, u64)>) -> Result<(), StoreError> {
        match info {
            Some(info) => self.info.insert(k, info).map_err(internal)?,
            None => self.info.remove(k).map_err(internal)?,
        };
        Ok(())
    }

    /// Removes every kept version of the session at `k`.
    pub(super) fn remove_all(&mut self, k: &[u8]) -> Result<(), StoreError> {
        self.info.remove(k).map_err(internal)?;
        let (lo, hi) = (version_key(k, 0), version_key(k, u64::MAX));
        self.kept
            .retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)
            .map_err(internal)?;
        Ok(())
    }
}

/// The current document (`current`, as version and value) and the kept ones of the
/// session at `k`, newest first.
pub(super) fn list(
    info: &impl ReadableTable<&'static [u8], (u64, u64)>,
    kept: &impl ReadableTable<&'static [u8], (u64, u64, &'static [u8])>,
    k: &[u8],
    current: Option<(u64, Vec<u8>)>,
) -> Result<Vec<StoredVersion>, StoreError> {
    let mut out = Vec::new();
    if let Some((version, value)) = current {
        let (written_at_ms, history_len) = info
            .get(k)
            .map_err(internal)?
            .map_or((0, 0), |row| row.value());
        out.push(StoredVersion {
            version,
            written_at_ms,
            history_len,
            value,
        });
    }
    let (lo, hi) = (version_key(k, 0), version_key(k, u64::MAX));
    for row in kept
        .range(lo.as_slice()..=hi.as_slice())
        .map_err(internal)?
        .rev()
    {
        let (key, value) = row.map_err(internal)?;
        let key = key.value();
        let version = u64::from_be_bytes(
            key[key.len() - 8..]
                .try_into()
                .map_err(|_| StoreError::Internal("embedded store: a bad version key".into()))?,
        );
        let (written_at_ms, history_len, value) = value.value();
        out.push(StoredVersion {
            version,
            written_at_ms,
            history_len,
            value: value.to_vec(),
        });
    }
    Ok(out)
}
