//! {{name}}: an agent plugin. Each turn gets the session's state, saves it back and
//! answers; the host keeps the state between turns (README.md).

use agent_sdk::{Agent, Result, Session};
use serde::{Deserialize, Serialize};

/// What the plugin remembers of a session.
#[derive(Default, Serialize, Deserialize)]
struct Memory {
    turns: u32,
}

struct Plugin;

impl Agent for Plugin {
    fn handle(session: &Session, input: &str) -> Result<String> {
        let mut memory: Memory = session.load()?.unwrap_or_default();
        memory.turns += 1;
        let previous: Vec<String> = session.last(1)?;
        session.push(input)?;
        session.save(&memory)?;
        Ok(format!(
            "turn {}: you said {input:?}, before that {previous:?}",
            memory.turns
        ))
    }
}

agent_sdk::export_agent!(Plugin);
