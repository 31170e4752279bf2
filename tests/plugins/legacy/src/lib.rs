//! Test plugin: a counter in the session state, built against the frozen
//! `agent:state@0.1.0` WIT in `wit/` with wit-bindgen alone, as plugins built before
//! 0.1.1 were. It shows that such plugins keep loading and running.

// The bindings are generated in this crate: their exports are `unsafe extern`
// functions and their modules undocumented.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    path: "wit",
    world: "agent-plugin",
});

use agent::state::agent_state as state;
use exports::agent::state::handler::{Guest, Info};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> Info {
        Info {
            name: "legacy".into(),
            version: "0.1.0".into(),
        }
    }

    fn handle(session: String, _input: String) -> Result<String, String> {
        let current = state::load(&session)
            .map_err(|e| format!("{e:?}"))?
            .map(|e| {
                String::from_utf8_lossy(&e.value)
                    .parse::<u64>()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let next = (current + 1).to_string();
        let options = state::SaveOptions {
            ttl_seconds: None,
            if_version: None,
        };
        state::save(&session, next.as_bytes(), options).map_err(|e| format!("{e:?}"))?;
        Ok(next)
    }
}

export!(Legacy);
