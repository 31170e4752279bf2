//! Benchmark plugin: the Redis work of one typical agent turn. Loads a ~2 KB JSON
//! state, reads the last 10 history items, appends the user's message and an
//! answer, and saves the state with a TTL of one hour.

use std::time::Duration;

use agent_sdk::{Agent, Result, SaveOptions, Session};
use serde::{Deserialize, Serialize};

/// ~2 KB once serialised.
#[derive(Serialize, Deserialize)]
struct State {
    turns: u64,
    profile: String,
}

struct BenchAgent;

impl Agent for BenchAgent {
    fn handle(session: &Session, input: &str) -> Result<String> {
        let mut state = session.load::<State>()?.unwrap_or_else(|| State {
            turns: 0,
            profile: "x".repeat(2000),
        });
        let recent: Vec<String> = session.last(10)?;
        state.turns += 1;
        let answer = format!("turn {} after {} messages", state.turns, recent.len());
        session.append(&[input, answer.as_str()])?;
        let options = SaveOptions {
            ttl: Some(Duration::from_secs(3600)),
            if_version: None,
        };
        session.save_with(&state, options)?;
        Ok(answer)
    }
}

agent_sdk::export_agent!(BenchAgent);
