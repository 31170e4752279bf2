//! Test plugin: a component that keeps state through two interfaces at once. Its
//! plugin-wide counter and inputs go through `wasi:keyvalue`, with the bindings of
//! Spin's Rust SDK (`spin-sdk` 5.1.0 from crates.io, as a component written for Spin
//! has them); its per-session counter through `agent-state` (wit-bindgen on our
//! WIT). Each turn answers `session N, plugin M, keys K1,K2,...`.

// The bindings are generated in this crate: their exports are `unsafe extern`
// functions and their modules undocumented.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    inline: "
        package test:spin-kv;
        world plugin {
            import agent:state/agent-state@0.1.3;
            export agent:state/handler@0.1.3;
        }
    ",
    path: "../../../wit",
    generate_all,
});

use agent::state::agent_state as state;
use exports::agent::state::handler::{Guest, Info};
use spin_sdk::wit::wasi::keyvalue::{atomics, store};

struct SpinKv;

impl Guest for SpinKv {
    fn describe() -> Info {
        Info {
            name: "spin-kv".into(),
            version: "0.1.0".into(),
        }
    }

    fn handle(session: String, input: String) -> Result<String, String> {
        let kv = |e: store::Error| format!("wasi:keyvalue: {e:?}");
        let bucket = store::open("").map_err(kv)?;
        let plugin_turns = atomics::increment(&bucket, "turns", 1).map_err(kv)?;
        bucket
            .set(&format!("input-{plugin_turns}"), input.as_bytes())
            .map_err(kv)?;
        let keys = bucket.list_keys(None).map_err(kv)?.keys.join(",");

        let st = |e: state::Error| format!("agent-state: {e:?}");
        let session_turns = state::load(&session)
            .map_err(st)?
            .and_then(|e| String::from_utf8(e.value).ok()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let options = state::SaveOptions {
            ttl_seconds: None,
            if_version: None,
        };
        state::save(&session, session_turns.to_string().as_bytes(), options).map_err(st)?;
        Ok(format!(
            "session {session_turns}, plugin {plugin_turns}, keys {keys}"
        ))
    }
}

export!(SpinKv);
