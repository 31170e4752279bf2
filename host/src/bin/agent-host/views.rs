//! The JSON the CLI prints and the HTTP API answers for sessions and their kept
//! versions: one shape for both.

use agent_host::checkpoints::VersionInfo;
use agent_host::store::StoredVersion;
use agent_host::{Quota, SessionSnapshot, Usage};
use serde_json::json;

/// A session as JSON (the same shape as the HTTP API's).
pub(crate) fn session_json(session: &str, s: &SessionSnapshot) -> serde_json::Value {
    json!({
        "session": session,
        "state": s.state.as_ref().map(|e| bytes_json(&e.value)),
        "version": s.state.as_ref().map_or(0, |e| e.version),
        "history_len": s.history_len,
        "history": s.history.iter().map(|i| bytes_json(i)).collect::<Vec<_>>(),
        "ttl_ms": s.ttl.map(|t| t.as_millis() as u64),
    })
}

/// Stored bytes as JSON: the text when it is UTF-8 (what the SDK writes), otherwise
/// `{"hex": "..."}`, so nothing is altered on the way.
pub(crate) fn bytes_json(bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!({ "hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() }),
    }
}

/// `{"sessions", "bytes", "quota": {"sessions", "bytes"}}` (a quota count `null`:
/// unlimited).
pub(crate) fn usage_json(usage: &Usage, quota: &Quota) -> serde_json::Value {
    json!({
        "sessions": usage.sessions,
        "bytes": usage.bytes,
        "quota": {"sessions": quota.sessions, "bytes": quota.bytes},
    })
}

/// `{"versions": [{"version", "written_at_ms", "bytes", "history_len"}...]}`,
/// newest first.
pub(crate) fn versions_json(versions: &[VersionInfo]) -> serde_json::Value {
    let list: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "written_at_ms": v.written_at_ms,
                "bytes": v.bytes,
                "history_len": v.history_len,
            })
        })
        .collect();
    json!({ "versions": list })
}

/// `{"version", "state", "written_at_ms", "history_len"}`.
pub(crate) fn version_json(v: &StoredVersion) -> serde_json::Value {
    json!({
        "version": v.version,
        "state": bytes_json(&v.value),
        "written_at_ms": v.written_at_ms,
        "history_len": v.history_len,
    })
}
