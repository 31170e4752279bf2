//! Test plugin: runs the state operations it is given (a JSON array) through the raw
//! `agent-state` bindings and answers with one JSON result per operation:
//! `{"ok": ...}` or `{"err": {"kind": ..., "detail": ...}}`. Byte values are sent
//! and returned as UTF-8 strings; `save-big`/`set-big` send `size` bytes.

use agent_sdk::raw::agent::state::agent_state as wit;
use agent_sdk::{Agent, Error, Result, Session, StateError};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
enum Op {
    Load {
        session: String,
    },
    Emit {
        chunk: String,
    },
    Panic,
    Sleep {
        ms: u64,
    },
    Versions {
        session: String,
    },
    LoadVersion {
        session: String,
        version: u64,
    },
    Save {
        session: String,
        value: String,
        ttl: Option<u32>,
        if_version: Option<u64>,
    },
    SaveBig {
        session: String,
        size: usize,
    },
    Delete {
        session: String,
    },
    Append {
        session: String,
        items: Vec<String>,
    },
    Items {
        session: String,
        last: Option<u32>,
    },
    Pop {
        session: String,
    },
    Touch {
        session: String,
        ttl: Option<u32>,
    },
    Ttl {
        session: String,
    },
    Clear {
        session: String,
    },
    List {
        cursor: Option<String>,
        limit: u32,
    },
    Get {
        key: String,
    },
    Set {
        key: String,
        value: String,
        ttl: Option<u32>,
    },
    SetBig {
        key: String,
        size: usize,
    },
    Remove {
        key: String,
    },
    Increment {
        key: String,
        delta: i64,
    },
}

fn text(bytes: Vec<u8>) -> Value {
    Value::String(String::from_utf8_lossy(&bytes).into_owned())
}

fn run(op: Op) -> std::result::Result<Value, StateError> {
    let no_opts = |ttl, if_version| wit::SaveOptions {
        ttl_seconds: ttl,
        if_version,
    };
    Ok(match op {
        Op::Emit { chunk } => {
            agent_sdk::raw::agent::state::output::emit(&chunk)?;
            Value::Null
        }
        Op::Panic => panic!("probe: asked to panic"),
        Op::Sleep { ms } => {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Value::Null
        }
        Op::Versions { session } => {
            let versions = wit::versions(&session)?;
            let list: Vec<Value> = versions
                .iter()
                .map(|v| json!([v.version, v.bytes, v.history_len, v.written_at_ms > 0]))
                .collect();
            json!(list)
        }
        Op::LoadVersion { session, version } => match wit::load_version(&session, version)? {
            Some(e) => json!({"value": text(e.value), "version": e.version}),
            None => Value::Null,
        },
        Op::Load { session } => match wit::load(&session)? {
            Some(e) => json!({"value": text(e.value), "version": e.version}),
            None => Value::Null,
        },
        Op::Save {
            session,
            value,
            ttl,
            if_version,
        } => {
            json!(wit::save(
                &session,
                value.as_bytes(),
                no_opts(ttl, if_version)
            )?)
        }
        Op::SaveBig { session, size } => {
            json!(wit::save(&session, &vec![b'x'; size], no_opts(None, None))?)
        }
        Op::Delete { session } => json!(wit::delete(&session)?),
        Op::Append { session, items } => {
            let items: Vec<Vec<u8>> = items.into_iter().map(String::into_bytes).collect();
            json!(wit::append(&session, &items)?)
        }
        Op::Items { session, last } => {
            Value::Array(wit::items(&session, last)?.into_iter().map(text).collect())
        }
        Op::Pop { session } => wit::pop(&session)?.map_or(Value::Null, text),
        Op::Touch { session, ttl } => json!(wit::touch(&session, ttl)?),
        Op::Ttl { session } => json!(wit::ttl(&session)?),
        Op::Clear { session } => json!(wit::clear(&session)?),
        Op::List { cursor, limit } => {
            let page = wit::list_sessions(cursor.as_deref(), limit)?;
            json!({"sessions": page.sessions, "cursor": page.cursor})
        }
        Op::Get { key } => wit::get(&key)?.map_or(Value::Null, text),
        Op::Set { key, value, ttl } => {
            wit::set(&key, value.as_bytes(), ttl)?;
            Value::Null
        }
        Op::SetBig { key, size } => {
            wit::set(&key, &vec![b'x'; size], None)?;
            Value::Null
        }
        Op::Remove { key } => json!(wit::remove(&key)?),
        Op::Increment { key, delta } => json!(wit::increment(&key, delta)?),
    })
}

fn error_json(e: StateError) -> Value {
    let (kind, detail) = match e {
        StateError::InvalidKey(m) => ("invalid-key", json!(m)),
        StateError::InvalidArgument(m) => ("invalid-argument", json!(m)),
        StateError::TooLarge(limit) => ("too-large", json!(limit)),
        StateError::QuotaExceeded(m) => ("quota-exceeded", json!(m)),
        StateError::Conflict => ("conflict", Value::Null),
        StateError::Unavailable(m) => ("unavailable", json!(m)),
        StateError::Internal(m) => ("internal", json!(m)),
    };
    json!({"err": {"kind": kind, "detail": detail}})
}

struct Probe;

impl Agent for Probe {
    fn handle(_session: &Session, input: &str) -> Result<String> {
        let ops: Vec<Op> = serde_json::from_str(input).map_err(Error::msg)?;
        let results: Vec<Value> = ops
            .into_iter()
            .map(|op| match run(op) {
                Ok(v) => json!({ "ok": v }),
                Err(e) => error_json(e),
            })
            .collect();
        Ok(Value::Array(results).to_string())
    }
}

agent_sdk::export_agent!(Probe);
