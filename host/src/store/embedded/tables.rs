//! The embedded store's tables, how keys are laid out in them, and the reads every
//! transaction shares.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, TableDefinition};

use crate::error::StoreError;
use crate::store::Entry;
use crate::store::keys::Namespace;

/// `ns \0 session` -> (version, document).
pub(super) const STATE: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("state");
/// `ns \0 session` -> (expires at, unix ms, 0 = never; first history seq; end seq).
/// A row exists exactly when the session does.
pub(super) const META: TableDefinition<&[u8], (u64, u64, u64)> = TableDefinition::new("meta");
/// `ns \0 session \0 seq (big-endian)` -> item.
pub(super) const HISTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("history");
/// `ns \0 expires-at (big-endian) session` -> (): sessions that expire, by time.
pub(super) const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");
/// `ns \0 key` -> (expires at, 0 = never; value).
pub(super) const VALUES: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("values");
/// `ns \0 session` -> (written at, unix ms; history length then): when the current
/// state document was written, if versions were kept then.
pub(super) const STATE_INFO: TableDefinition<&[u8], (u64, u64)> =
    TableDefinition::new("state_info");
/// `ns \0 session \0 version (big-endian)` -> (written at; history length;
/// document): the state documents a session's commits replaced (`keep_versions`).
pub(super) const VERSIONS: TableDefinition<&[u8], (u64, u64, &[u8])> =
    TableDefinition::new("versions");
/// Records that expire (see `expiring`): `ns \0 session \0 key` -> (expires at;
/// record) for idempotency claims and records, `ns \0 session \0 \x01 stream id \0
/// seq (big-endian)` -> (expires at; event) for buffered stream events.
pub(super) const EXPIRING: TableDefinition<&[u8], (u64, &[u8])> = TableDefinition::new("expiring");
/// `expires-at (big-endian) record key` -> (): the records above by time.
pub(super) const EXPIRING_BY_TIME: TableDefinition<&[u8], ()> =
    TableDefinition::new("expiring_by_time");

/// The usage ledger (see `usage`): `ns \0 kind name` -> (bytes, expires at; 0 =
/// never).
pub(super) const USAGE: TableDefinition<&[u8], (u64, u64)> = TableDefinition::new("usage");
/// `ns \0 expires-at (big-endian) kind name` -> (): the ledger's entries by time.
pub(super) const USAGE_BY_TIME: TableDefinition<&[u8], ()> = TableDefinition::new("usage_by_time");
/// `ns` -> (bytes, sessions) the ledger records.
pub(super) const USAGE_TOTALS: TableDefinition<&[u8], (u64, u64)> =
    TableDefinition::new("usage_totals");

/// Model spend counters (see `spend`): `Spender::key(period)` -> (kept until,
/// unix ms; input, output and cached tokens; requests; estimated requests; cost in
/// millionths of a US dollar).
pub(super) const MODEL_USAGE: TableDefinition<&str, SpendRow> = TableDefinition::new("model_usage");

/// A row of [`MODEL_USAGE`].
pub(super) type SpendRow = (u64, u64, u64, u64, u64, u64, u64);

/// How many expired sessions one commit or listing removes from the file.
pub(super) const PRUNE_BATCH: usize = 64;

pub(super) fn internal(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    tracing::error!(error = %e, "embedded store failed");
    StoreError::Internal(format!("embedded store: {e}"))
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

pub(super) fn at(now: u64, d: Duration) -> u64 {
    now.saturating_add(u64::try_from(d.as_millis().max(1)).unwrap_or(u64::MAX))
}

pub(super) fn live(expires: u64, now: u64) -> bool {
    expires == 0 || expires > now
}

pub(super) fn key(ns: &Namespace, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.base().len() + 1 + name.len());
    k.extend_from_slice(ns.base().as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

pub(super) fn ns_prefix(ns: &Namespace) -> Vec<u8> {
    key(ns, "")
}

/// The bounds of every key that starts with `prefix`.
pub(super) fn prefixed(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    // No key holds 0xff (ids are UTF-8 without control characters, seqs follow a
    // 0 byte and are bounded by the range of their own session), so `prefix ff`
    // bounds them all.
    let mut end = prefix.to_vec();
    end.push(0xff);
    (prefix.to_vec(), end)
}

pub(super) fn item_key(session_key: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(session_key.len() + 9);
    k.extend_from_slice(session_key);
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn expiry_key(ns: &Namespace, expires: u64, session: &str) -> Vec<u8> {
    let mut k = ns_prefix(ns);
    k.extend_from_slice(&expires.to_be_bytes());
    k.extend_from_slice(session.as_bytes());
    k
}

/// A session's row in `META`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Meta {
    pub(super) expires: u64,
    pub(super) start: u64,
    pub(super) end: u64,
}

impl Meta {
    pub(super) fn len(&self) -> u64 {
        self.end - self.start
    }

    pub(super) fn ttl(&self, now: u64) -> Option<Duration> {
        (self.expires != 0).then(|| Duration::from_millis(self.expires.saturating_sub(now)))
    }
}

pub(super) fn meta_of<T: ReadableTable<&'static [u8], (u64, u64, u64)>>(
    table: &T,
    k: &[u8],
    now: u64,
) -> Result<Option<Meta>, StoreError> {
    let Some(row) = table.get(k).map_err(internal)? else {
        return Ok(None);
    };
    let (expires, start, end) = row.value();
    Ok(live(expires, now).then_some(Meta {
        expires,
        start,
        end,
    }))
}

pub(super) fn state_of<T: ReadableTable<&'static [u8], (u64, &'static [u8])>>(
    table: &T,
    k: &[u8],
) -> Result<Option<Entry>, StoreError> {
    Ok(table.get(k).map_err(internal)?.map(|row| {
        let (version, value) = row.value();
        Entry {
            value: value.to_vec(),
            version,
        }
    }))
}

pub(super) fn tail_of<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    k: &[u8],
    meta: &Meta,
    last: u32,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let from = meta.end.saturating_sub(u64::from(last)).max(meta.start);
    let (lo, hi) = (item_key(k, from), item_key(k, meta.end));
    let mut out = Vec::with_capacity((meta.end - from) as usize);
    for row in table
        .range(lo.as_slice()..hi.as_slice())
        .map_err(internal)?
    {
        out.push(row.map_err(internal)?.1.value().to_vec());
    }
    Ok(out)
}

pub(super) fn value_of<T: ReadableTable<&'static [u8], (u64, &'static [u8])>>(
    table: &T,
    k: &[u8],
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(table.get(k).map_err(internal)?.and_then(|row| {
        let (expires, value) = row.value();
        live(expires, now).then(|| value.to_vec())
    }))
}

/// The tables of one read transaction.
pub(super) struct Reader {
    pub(super) state: redb::ReadOnlyTable<&'static [u8], (u64, &'static [u8])>,
    pub(super) meta: redb::ReadOnlyTable<&'static [u8], (u64, u64, u64)>,
    pub(super) history: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    pub(super) values: redb::ReadOnlyTable<&'static [u8], (u64, &'static [u8])>,
    pub(super) now: u64,
}

impl Reader {
    pub(super) fn session(&self, k: &[u8]) -> Result<Option<Meta>, StoreError> {
        meta_of(&self.meta, k, self.now)
    }
}
