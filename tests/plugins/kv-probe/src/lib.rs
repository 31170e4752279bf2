//! Test plugin: runs the `wasi:keyvalue@0.2.0-draft2` operations its input lists
//! (a JSON array) and answers each one's result (a JSON array of `{"ok": ..}` or
//! `{"err": ..}`). It is built with wit-bindgen from the vendored standard WIT
//! alone (`wit/deps/keyvalue`, world `keyvalue-plugin`), without the SDK, as a
//! component written for another host would be.
//!
//! Operations (`bucket` is the one the last `open` opened, "" before any):
//! `{"op":"open","bucket":B}`, `get`/`exists`/`delete` with `key`, `set` with `key`
//! and `value` (a string), `increment` with `key` and `delta`, `list` with an
//! optional `cursor`, `list-all` (every page; answers the keys and the page count),
//! `get-many`/`delete-many` with `keys`, `set-many` with `pairs` (`[[k, v], ..]`),
//! `cas` with `key`, `expect` (what `current` must show, or null), `value` and an
//! optional `meddle` (a value set between reading and swapping),
//! `cas-add` with `key` (read, add 1, swap; retried on `cas-failed`), and `trap`
//! (panics: the turn fails and writes nothing).

// The bindings are generated in this crate: their exports are `unsafe extern`
// functions and their modules undocumented.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "agent:state/keyvalue-plugin",
    generate_all,
});

use exports::agent::state::handler::{Guest, Info};
use serde_json::{Value, json};
use wasi::keyvalue::{atomics, batch, store};

struct KvProbe;

impl Guest for KvProbe {
    fn describe() -> Info {
        Info {
            name: "kv-probe".into(),
            version: "0.1.0".into(),
        }
    }

    fn handle(_session: String, input: String) -> Result<String, String> {
        let ops: Vec<Value> = serde_json::from_str(&input).map_err(|e| e.to_string())?;
        // The default bucket, unless the operator does not allow it.
        let mut bucket = store::open("").ok();
        let mut out = Vec::new();
        for op in &ops {
            let result = run(&mut bucket, op);
            out.push(match result {
                Ok(v) => json!({ "ok": v }),
                Err(e) => json!({ "err": e }),
            });
        }
        Ok(Value::Array(out).to_string())
    }
}

fn text(e: &store::Error) -> String {
    match e {
        store::Error::NoSuchStore => "no-such-store".into(),
        store::Error::AccessDenied => "access-denied".into(),
        store::Error::Other(m) => format!("other: {m}"),
    }
}

fn s<'a>(op: &'a Value, field: &str) -> &'a str {
    op[field].as_str().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|k| k.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn shown(v: Option<Vec<u8>>) -> Value {
    v.map_or(Value::Null, |b| {
        Value::String(String::from_utf8_lossy(&b).into_owned())
    })
}

fn run(open: &mut Option<store::Bucket>, op: &Value) -> Result<Value, String> {
    let key = s(op, "key");
    let e = |e: store::Error| text(&e);
    if s(op, "op") == "open" {
        *open = Some(store::open(s(op, "bucket")).map_err(e)?);
        return Ok(Value::Null);
    }
    let bucket = open.as_ref().ok_or("no bucket is open")?;
    Ok(match s(op, "op") {
        "get" => shown(bucket.get(key).map_err(e)?),
        "exists" => json!(bucket.exists(key).map_err(e)?),
        "delete" => {
            bucket.delete(key).map_err(e)?;
            Value::Null
        }
        "set" => {
            bucket.set(key, s(op, "value").as_bytes()).map_err(e)?;
            Value::Null
        }
        "increment" => {
            json!(atomics::increment(bucket, key, op["delta"].as_i64().unwrap_or(1)).map_err(e)?)
        }
        "list" => {
            let cursor = op["cursor"].as_str().map(str::to_owned);
            let page = bucket.list_keys(cursor.as_deref()).map_err(e)?;
            json!({ "keys": page.keys, "cursor": page.cursor })
        }
        "list-all" => {
            let (mut keys, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
            loop {
                let page = bucket.list_keys(cursor.as_deref()).map_err(e)?;
                pages += 1;
                keys.extend(page.keys);
                cursor = page.cursor;
                if cursor.is_none() {
                    break;
                }
            }
            json!({ "keys": keys, "pages": pages })
        }
        "get-many" => {
            let got = batch::get_many(bucket, &strings(&op["keys"])).map_err(e)?;
            Value::Array(got.into_iter().map(|(k, v)| json!([k, shown(v)])).collect())
        }
        "set-many" => {
            let pairs: Vec<(String, Vec<u8>)> = op["pairs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let text = |i: usize| p[i].as_str().unwrap_or_default();
                    (text(0).to_owned(), text(1).as_bytes().to_vec())
                })
                .collect();
            batch::set_many(bucket, &pairs).map_err(e)?;
            Value::Null
        }
        "delete-many" => {
            batch::delete_many(bucket, &strings(&op["keys"])).map_err(e)?;
            Value::Null
        }
        "cas" => {
            let cas = atomics::Cas::new(bucket, key).map_err(e)?;
            let current = shown(cas.current().map_err(e)?);
            if current != op["expect"] {
                return Err(format!("current is {current}, not {}", op["expect"]));
            }
            // Another write between reading and swapping.
            if let Some(meddle) = op["meddle"].as_str() {
                bucket.set(key, meddle.as_bytes()).map_err(e)?;
            }
            match atomics::swap(cas, s(op, "value").as_bytes()) {
                Ok(()) => json!("swapped"),
                Err(atomics::CasError::CasFailed(fresh)) => {
                    json!({ "cas-failed": shown(fresh.current().map_err(e)?) })
                }
                Err(atomics::CasError::StoreError(err)) => return Err(text(&err)),
            }
        }
        "cas-add" => {
            let mut cas = atomics::Cas::new(bucket, key).map_err(e)?;
            let mut tries = 0;
            loop {
                tries += 1;
                let n: i64 = cas
                    .current()
                    .map_err(e)?
                    .and_then(|b| String::from_utf8(b).ok()?.parse().ok())
                    .unwrap_or(0);
                match atomics::swap(cas, (n + 1).to_string().as_bytes()) {
                    Ok(()) => break json!({ "value": n + 1, "tries": tries }),
                    Err(atomics::CasError::CasFailed(fresh)) => cas = fresh,
                    Err(atomics::CasError::StoreError(err)) => return Err(text(&err)),
                }
            }
        }
        "trap" => panic!("kv-probe: trap requested"),
        other => return Err(format!("unknown op {other:?}")),
    })
}

export!(KvProbe);
