//! A session's kept state versions on Redis: the state hash's `at` and `hl` fields
//! for the current document, and a list of the replaced ones, newest first, each
//! `<version> <written at ms> <history length> <document>` (written by
//! `lua/functions.lua`).

use super::RedisStore;
use crate::error::StoreError;
use crate::store::StoredVersion;
use crate::store::keys::{Name, Namespace};

impl RedisStore {
    pub(super) async fn read_versions(
        &self,
        ns: &Namespace,
        session: &Name,
    ) -> Result<Vec<StoredVersion>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(ns.state_key(session))
            .arg("v")
            .arg("ver")
            .arg("at")
            .arg("hl");
        pipe.cmd("LRANGE")
            .arg(ns.versions_key(session))
            .arg(0)
            .arg(-1);
        type Current = (Option<Vec<u8>>, Option<u64>, Option<u64>, Option<u64>);
        let ((value, version, at, hl), kept): (Current, Vec<Vec<u8>>) = self.pipe(&pipe).await?;
        let mut versions = Vec::with_capacity(kept.len() + 1);
        if let Some(value) = value {
            versions.push(StoredVersion {
                version: version.unwrap_or(0),
                written_at_ms: at.unwrap_or(0),
                history_len: hl.unwrap_or(0),
                value,
            });
        }
        for entry in kept {
            versions.push(parse(entry)?);
        }
        Ok(versions)
    }
}

/// One entry of the versions list.
fn parse(mut entry: Vec<u8>) -> Result<StoredVersion, StoreError> {
    let bad = || StoreError::Internal("a kept version the host cannot read".into());
    let mut fields = [0u64; 3];
    let mut start = 0;
    for field in &mut fields {
        let end = start
            + entry[start..]
                .iter()
                .position(|&b| b == b' ')
                .ok_or_else(bad)?;
        *field = std::str::from_utf8(&entry[start..end])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        start = end + 1;
    }
    let value = entry.split_off(start);
    let [version, written_at_ms, history_len] = fields;
    Ok(StoredVersion {
        version,
        written_at_ms,
        history_len,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_with_spaces_in_the_document() {
        let v = parse(b"3 1700000000000 12 {\"a\": 1}".to_vec()).unwrap();
        assert_eq!(
            (v.version, v.written_at_ms, v.history_len),
            (3, 1_700_000_000_000, 12)
        );
        assert_eq!(v.value, b"{\"a\": 1}");
        assert_eq!(parse(b"1 0 0 ".to_vec()).unwrap().value, b"");
        assert!(parse(b"1 x 0 doc".to_vec()).is_err());
        assert!(parse(b"1 0".to_vec()).is_err());
    }
}
