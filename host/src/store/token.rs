//! Tokens no other claim, stream or schedule has.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// 128 bits (hex) no other claim or stream has: a process-wide random seed (std's `RandomState`
/// keys come from the OS), the time and a counter, hashed.
pub(crate) fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut hasher = Sha256::new();
    hasher.update(seed.hash_one((n, now, std::process::id())).to_le_bytes());
    hasher.update(RandomState::new().hash_one(n).to_le_bytes());
    hasher.update(n.to_le_bytes());
    hasher.update(now.to_le_bytes());
    hex(&hasher.finalize()[..16])
}

/// `bytes` in lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
