//! The key layout: how a plugin's namespace, session ids and keys become Redis keys.
//!
//! Every key is `{root}:{prefix}:…`. `root` and `prefix` come from the operator and
//! are restricted to `[A-Za-z0-9_.-/]`, so `:` always ends them; the guest never
//! chooses them. Session ids and plugin-wide keys come from the guest; they are
//! validated ([`Name::session`], [`Name::key`]) and percent-encoded so that the
//! encoded form has only `[A-Za-z0-9_.~-]` and `%`: no `:` to break out of its place,
//! no `{`/`}` to move a hash tag, no glob character. Two different ids never encode
//! to the same string.
//!
//! | what | key |
//! |---|---|
//! | session state (hash: `v`, `ver`) | `{root}:{prefix}:s:{<session>}:state` |
//! | session history (list) | `{root}:{prefix}:s:{<session>}:hist` |
//! | kept state versions of a session (list, newest first) | `{root}:{prefix}:s:{<session>}:vers` |
//! | buffered events of a streamed turn of the session (list) | `{root}:{prefix}:s:{<session>}:stream:<id>` |
//! | idempotency record of a session's turn (string) | `{root}:{prefix}:s:{<session>}:idem:<key>` |
//! | plugin-wide value | `{root}:{prefix}:kv:{<key>}` |
//! | session index (zset, by name) | `{root}:{prefix}:index:{<root>:<prefix>}:names` |
//! | session index (zset, by expiry) | `{root}:{prefix}:index:{<root>:<prefix>}:expiry` |
//! | plugin-wide value index (zset, by expiry) | `{root}:{prefix}:index:{<root>:<prefix>}:values` |
//! | on a Redis Cluster, bucket B (0-15) of the session index, by name and by expiry | `{root}:{prefix}:index:{<root>:<prefix>:B}:names`, `…:expiry` |
//! | a plugin's schedules (pending by due time, records, claims, by session, finished) | `{root}:{prefix}:sched:{<root>:<prefix>}:due`, `…:rec`, `…:claims`, `…:by`, `…:fin`; bucket B on a Cluster: `…:sched:{<root>:<prefix>:B}:…` |
//!
//! The `{…}` are Redis Cluster hash tags: all keys of one session share a slot, so a
//! session's writes are one atomic step; the index keys of a plugin share another.
//! On a Redis Cluster the session index is split into [`INDEX_BUCKETS`] buckets, each
//! with a hash tag of its own, by a hash of the session id ([`index_bucket`]): every
//! commit writes the index, and one slot for all of a plugin's sessions would put
//! that work on one shard.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::error::StateError;

/// Default root of every key (`{root}:{prefix}:…`).
pub const DEFAULT_ROOT: &str = "agent";

/// Buckets of a plugin's session index on a Redis Cluster.
pub const INDEX_BUCKETS: u32 = 16;

/// The bucket of the session index that lists `session` on a Redis Cluster: the
/// first bytes of the SHA-256 of its id, so every host and version agrees.
pub fn index_bucket(session: &Name) -> u32 {
    let digest = Sha256::digest(session.encoded.as_bytes());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) % INDEX_BUCKETS
}

/// Longest accepted session id or key, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// Longest accepted root or prefix, in bytes.
pub const MAX_PREFIX_BYTES: usize = 128;

/// Every byte but these is percent-encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Where one plugin's keys live: `{root}:{prefix}`, checked at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    base: String,
}

impl Namespace {
    /// Checks `root` and `prefix` (1 to 128 bytes of `[A-Za-z0-9_.-/]` each).
    pub fn new(root: &str, prefix: &str) -> Result<Self, String> {
        check_segment("root", root)?;
        check_segment("prefix", prefix)?;
        Ok(Self {
            base: format!("{root}:{prefix}"),
        })
    }

    /// `{root}:{prefix}`, the start of every key of this namespace.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The session's state key.
    pub fn state_key(&self, session: &Name) -> String {
        format!("{}:s:{{{}}}:state", self.base, session.encoded)
    }

    /// The session's history key.
    pub fn history_key(&self, session: &Name) -> String {
        format!("{}:s:{{{}}}:hist", self.base, session.encoded)
    }

    /// The session's kept state versions (`keep_versions`).
    pub fn versions_key(&self, session: &Name) -> String {
        format!("{}:s:{{{}}}:vers", self.base, session.encoded)
    }

    /// The buffered events of stream `id` of a turn of `session` (the id is
    /// percent-encoded like a session id).
    pub fn stream_key(&self, session: &Name, id: &str) -> String {
        let id = utf8_percent_encode(id, ENCODE);
        format!("{}:s:{{{}}}:stream:{id}", self.base, session.encoded)
    }

    /// The idempotency record `key` of a turn of `session` (the key is
    /// percent-encoded like a session id).
    pub fn idempotency_key(&self, session: &Name, key: &str) -> String {
        let key = utf8_percent_encode(key, ENCODE);
        format!("{}:s:{{{}}}:idem:{key}", self.base, session.encoded)
    }

    /// A plugin-wide value's key. An `agent-state` value has its own hash tag, so a
    /// plugin's values spread over a cluster; a `wasi:keyvalue` bucket's key
    /// ([`Name::bucket_key`]) has the plugin's, like its indexes, so a turn's
    /// bucket writes commit in one atomic script on a cluster too.
    pub fn value_key(&self, key: &Name) -> String {
        if key.is_bucket_key() {
            return format!("{0}:bkv:{{{0}}}:{1}", self.base, key.encoded);
        }
        format!("{}:kv:{{{}}}", self.base, key.encoded)
    }

    /// The index of session names (all scores 0, ordered by name).
    pub fn index_names_key(&self) -> String {
        format!("{0}:index:{{{0}}}:names", self.base)
    }

    /// The index of session expiry times (score: unix ms, `+inf` for never).
    pub fn index_expiry_key(&self) -> String {
        format!("{0}:index:{{{0}}}:expiry", self.base)
    }

    /// Bucket `bucket` of the session index by name, on a Redis Cluster.
    pub fn index_bucket_names_key(&self, bucket: u32) -> String {
        format!("{0}:index:{{{0}:{bucket}}}:names", self.base)
    }

    /// The keys of a bucket of the plugin's schedules (see `store::schedule`):
    /// pending by due time, records, claims, kept ones by session, finished ones by
    /// time. `None`: the one bucket of a standalone server; `Some(b)`: bucket `b`
    /// on a Redis Cluster, in the slot of bucket `b` of the session index.
    pub fn schedule_keys(&self, bucket: Option<u32>) -> [String; 5] {
        let tag = match bucket {
            Some(b) => format!("{}:{b}", self.base),
            None => self.base.clone(),
        };
        ["due", "rec", "claims", "by", "fin"].map(|k| format!("{}:sched:{{{tag}}}:{k}", self.base))
    }

    /// Bucket `bucket` of the session index by expiry, on a Redis Cluster.
    pub fn index_bucket_expiry_key(&self, bucket: u32) -> String {
        format!("{0}:index:{{{0}:{bucket}}}:expiry", self.base)
    }

    /// The names of the plugin-wide values that hold `wasi:keyvalue` buckets' keys
    /// (all scores 0, ordered by name), which `list-keys` pages through. An entry
    /// may outlive its value; listing checks the value index and drops it.
    pub fn index_bucket_keys_key(&self) -> String {
        format!("{0}:index:{{{0}}}:bucket-keys", self.base)
    }

    /// The keys of the usage ledger (see `store::Quota`): its sizes (a hash: entry
    /// key -> bytes counted; field `""`: their sum), its sessions (state key ->
    /// expiry in unix ms, `+inf` for never: the live ones are the sessions
    /// counted) and its other entries (values, idempotency records, streams: key ->
    /// expiry). `shard` `None` is the plugin's slot (the whole ledger on one server;
    /// on a cluster, the `wasi:keyvalue` keys'); on a cluster, shard `Some(b)` has
    /// the entries of bucket `b` of the session index ([`index_bucket`] of the
    /// session, or of the value's name), in that bucket's slot.
    pub fn usage_keys(&self, shard: Option<u32>) -> [String; 3] {
        let tag = match shard {
            None => format!("{{{}}}", self.base),
            Some(b) => format!("{{{}:{b}}}", self.base),
        };
        ["sizes", "sessions", "other"].map(|part| format!("{}:usage:{tag}:{part}", self.base))
    }

    /// The index of plugin-wide values (score: expiry in unix ms, `+inf` for never),
    /// which the per-plugin limit on their number is checked against.
    pub fn index_values_key(&self) -> String {
        format!("{0}:index:{{{0}}}:values", self.base)
    }
}

fn check_segment(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_PREFIX_BYTES {
        return Err(format!("{what} must be 1 to {MAX_PREFIX_BYTES} bytes"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(format!(
            "{what} {s:?} has {c:?}; only letters, digits and _ . - / are allowed"
        ));
    }
    Ok(())
}

/// A session id or plugin-wide key from the guest, validated, with its encoded form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    raw: String,
    encoded: String,
}

impl Name {
    /// Validates a session id.
    pub fn session(raw: impl Into<String>) -> Result<Self, StateError> {
        Self::new("session id", raw.into())
    }

    /// Validates a plugin-wide key.
    pub fn key(raw: impl Into<String>) -> Result<Self, StateError> {
        Self::new("key", raw.into())
    }

    /// The plugin-wide value that holds `key` of `wasi:keyvalue` bucket `bucket`:
    /// named `\x01bucket\x01key`. Bucket and key follow the rules of keys (the
    /// bucket may also be "", the default bucket); a key of `agent-state` has no
    /// control character, so it never names a bucket's value, and the first
    /// `\x01` after the bucket ends it, so two buckets never share a value.
    pub fn bucket_key(bucket: &str, key: &str) -> Result<Self, StateError> {
        check_bucket(bucket)?;
        check_name("key", key)?;
        let raw = format!("{}{key}", bucket_prefix(bucket));
        let encoded = utf8_percent_encode(&raw, ENCODE).to_string();
        Ok(Self { raw, encoded })
    }

    fn new(what: &'static str, raw: String) -> Result<Self, StateError> {
        check_name(what, &raw)?;
        let encoded = utf8_percent_encode(&raw, ENCODE).to_string();
        Ok(Self { raw, encoded })
    }

    /// Whether it names a key of a `wasi:keyvalue` bucket.
    pub fn is_bucket_key(&self) -> bool {
        self.raw.starts_with('\x01')
    }

    /// The name as it appears in a key (percent-encoded).
    pub fn encoded(&self) -> &str {
        &self.encoded
    }

    /// The id as the guest gave it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// The rules of a bucket name: those of keys, or "" (the default bucket).
pub(crate) fn check_bucket(bucket: &str) -> Result<(), StateError> {
    if bucket.is_empty() {
        return Ok(());
    }
    check_name("bucket", bucket)
}

/// What the names of the values of `bucket` start with (see [`Name::bucket_key`]).
pub fn bucket_prefix(bucket: &str) -> String {
    format!("\x01{bucket}\x01")
}

/// The rules every guest-supplied id, key or cursor follows.
pub(crate) fn check_name(what: &'static str, raw: &str) -> Result<(), StateError> {
    let invalid = |reason: String| StateError::InvalidKey { what, reason };
    if raw.is_empty() {
        return Err(invalid("is empty".into()));
    }
    if raw.len() > MAX_NAME_BYTES {
        return Err(invalid(format!(
            "is {} bytes, over the limit of {MAX_NAME_BYTES}",
            raw.len()
        )));
    }
    if let Some(pos) = raw.chars().position(char::is_control) {
        return Err(invalid(format!("has a control character at char {pos}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_stay_inside_their_hash_tag() {
        let ns = Namespace::new("agent", "tenant-a").unwrap();
        for raw in [
            "a:b", "{x}", "*", "?", "[a-z]", "\\", "}:state", "é ü", "%41",
        ] {
            let key = ns.state_key(&Name::session(raw).unwrap());
            let inner = key
                .strip_prefix("agent:tenant-a:s:{")
                .and_then(|k| k.strip_suffix("}:state"))
                .unwrap();
            assert!(
                inner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)),
                "{raw:?} encoded as {inner:?}"
            );
        }
    }

    #[test]
    fn encoding_is_injective_on_tricky_pairs() {
        let a = Name::session("%41").unwrap();
        let b = Name::session("A").unwrap();
        assert_ne!(a.encoded, b.encoded);
    }

    #[test]
    fn bad_names_are_typed_errors() {
        for raw in [
            String::new(),
            "a\nb".into(),
            "\u{7f}".into(),
            "x".repeat(513),
        ] {
            assert!(matches!(
                Name::session(raw.clone()),
                Err(StateError::InvalidKey { .. })
            ));
        }
        assert!(Name::session("x".repeat(512)).is_ok());
    }

    #[test]
    fn namespace_rejects_separators() {
        for bad in ["", "a:b", "a{b", "a b", "a*"] {
            assert!(Namespace::new("agent", bad).is_err(), "{bad:?}");
        }
        assert!(Namespace::new("agent", "tenant-a/chat_v1.2").is_ok());
    }
}
