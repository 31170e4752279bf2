//! The JSON the CLI prints and the HTTP API answers for sessions, their kept
//! versions, their scheduled turns, and what a plugin or tenant uses: one shape
//! for both. The CLI alone shows stored documents that are JSON as JSON values
//! ([`decoded`]); the HTTP API keeps the stored text, as it always has.

use agent_host::checkpoints::VersionInfo;
use agent_host::store::StoredVersion;
use agent_host::{Budget, ModelCount, ModelSpend, Periods, Quota, SessionSnapshot, Usage};
use serde_json::{Value, json};

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

/// `body` (a [`session_json`] or [`version_json`]) with its stored documents
/// (`state`, each `history` item) that are JSON shown as those JSON values, for
/// the CLI. A document that is not JSON (a plugin may store any bytes) stays as
/// [`bytes_json`] shows it, a string or `{"hex": ...}`, and its JSON Pointer is
/// listed in `"not_json"` (`["/state", "/history/2"]`; absent when every document
/// is JSON), so a stored JSON string `"hi"` and the stored text `hi`, both shown as
/// `"hi"`, are told apart. Numbers are read as 64-bit integers or floats: one
/// beyond that is rounded here (`--raw` shows the stored text).
pub(crate) fn decoded(mut body: Value, stored: &Stored<'_>) -> Value {
    let mut not_json = Vec::new();
    let mut decode = |bytes: &[u8], pointer: String| match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) => {
            not_json.push(pointer);
            bytes_json(bytes)
        }
    };
    if let Some(state) = stored.state {
        body["state"] = decode(state, "/state".into());
    }
    if let Some(history) = stored.history {
        body["history"] = history
            .iter()
            .enumerate()
            .map(|(i, item)| decode(item, format!("/history/{i}")))
            .collect();
    }
    if !not_json.is_empty() {
        body["not_json"] = json!(not_json);
    }
    body
}

/// The stored documents [`decoded`] shows as JSON.
pub(crate) struct Stored<'a> {
    /// The state document, if there is one.
    pub(crate) state: Option<&'a [u8]>,
    /// The history items, if the body has them.
    pub(crate) history: Option<&'a [Vec<u8>]>,
}

impl<'a> Stored<'a> {
    /// A session's state and history.
    pub(crate) fn session(s: &'a SessionSnapshot) -> Self {
        Self {
            state: s.state.as_ref().map(|e| e.value.as_slice()),
            history: Some(&s.history),
        }
    }

    /// A kept version's state.
    pub(crate) fn version(v: &'a StoredVersion) -> Self {
        Self {
            state: Some(&v.value),
            history: None,
        }
    }
}

/// Stored bytes as JSON: the text when it is UTF-8 (what the SDK writes), otherwise
/// `{"hex": "..."}`, so nothing is altered on the way.
pub(crate) fn bytes_json(bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!({ "hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() }),
    }
}

/// `{"sessions", "bytes", "quota": {"sessions", "bytes"}, "model"}` (a quota count
/// `null`: unlimited; `model`: [`model_json`]).
pub(crate) fn usage_json(usage: &Usage, quota: &Quota, model: &Spend) -> serde_json::Value {
    json!({
        "sessions": usage.sessions,
        "bytes": usage.bytes,
        "quota": {"sessions": quota.sessions, "bytes": quota.bytes},
        "model": model_json(model),
    })
}

/// What a plugin or a tenant spent on metered model calls today and this month
/// (UTC), and its budget.
pub(crate) struct Spend {
    pub(crate) day: ModelCount,
    pub(crate) month: ModelCount,
    pub(crate) periods: Periods,
    pub(crate) budget: Budget,
}

impl From<ModelSpend> for Spend {
    fn from(spend: ModelSpend) -> Self {
        Self {
            day: spend.day,
            month: spend.month,
            periods: spend.periods,
            budget: spend.budget,
        }
    }
}

/// `{"day": {"period": "2026-12-05", "input_tokens", "output_tokens",
/// "cached_tokens", "requests", "estimated", "cost_usd"}, "month": {"period":
/// "2026-12", ...}, "budget": {"tokens_per_day", "tokens_per_month",
/// "usd_per_day", "usd_per_month"}}` (a limit `null`: none; costs as `[pricing]`
/// priced each call, 0 without a price).
pub(crate) fn model_json(spend: &Spend) -> serde_json::Value {
    // The counters name their periods `d2026-12-05` and `m2026-12`.
    let day = spend.periods.day.trim_start_matches('d');
    let month = spend.periods.month.trim_start_matches('m');
    json!({
        "day": count_json(day, &spend.day),
        "month": count_json(month, &spend.month),
        "budget": {
            "tokens_per_day": spend.budget.tokens_per_day,
            "tokens_per_month": spend.budget.tokens_per_month,
            "usd_per_day": spend.budget.micro_usd_per_day.map(usd),
            "usd_per_month": spend.budget.micro_usd_per_month.map(usd),
        },
    })
}

fn count_json(period: &str, count: &ModelCount) -> serde_json::Value {
    json!({
        "period": period,
        "input_tokens": count.input_tokens,
        "output_tokens": count.output_tokens,
        "cached_tokens": count.cached_tokens,
        "requests": count.requests,
        "estimated": count.estimated,
        "cost_usd": usd(count.cost_micros),
    })
}

/// Millionths of a US dollar as dollars.
fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// A turn's model calls: `{"input_tokens", "output_tokens", "requests",
/// "estimated", "cost_usd"}` (`estimated`: how many of the requests' tokens are
/// estimates).
pub(crate) fn turn_usage_json(count: &ModelCount) -> serde_json::Value {
    json!({
        "input_tokens": count.input_tokens,
        "output_tokens": count.output_tokens,
        "requests": count.requests,
        "estimated": count.estimated,
        "cost_usd": usd(count.cost_micros),
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

/// A schedule as the API and the CLI show it.
pub(crate) fn schedule_json(s: &agent_host::Schedule) -> Value {
    let mut v = json!({
        "id": s.id,
        "at": s.at_ms,
        "input": s.input,
        "state": s.state,
        "attempts": s.attempts,
        "created": s.created_ms,
    });
    let fields = [
        ("started", s.started_ms.map(Value::from)),
        ("late", s.late.then_some(Value::Bool(true))),
        ("answer", s.answer.clone().map(Value::from)),
        ("error", s.error.clone().map(Value::from)),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            v[name] = value;
        }
    }
    v
}
