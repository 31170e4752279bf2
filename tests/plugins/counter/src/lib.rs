//! Test plugin: adds 1 to a counter kept in the session's state and answers with the
//! new value: the read-modify-write that concurrent turns must not lose.

use agent_sdk::{Agent, Result, Session};

struct Counter;

impl Agent for Counter {
    fn handle(session: &Session, _input: &str) -> Result<String> {
        let n = session.load::<u64>()?.unwrap_or(0) + 1;
        session.save(&n)?;
        Ok(n.to_string())
    }
}

agent_sdk::export_agent!(Counter);
