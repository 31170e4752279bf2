//! Test plugin that does not build: its handler answers a number on line 10 (see
//! tests/tests/errors.rs, which makes it a crate; tests/build.rs does not build it).

use agent_sdk::{Agent, Result, Session};

struct WrongType;

impl Agent for WrongType {
    fn handle(_session: &Session, input: &str) -> Result<String> {
        Ok(input.len())
    }
}

agent_sdk::export_agent!(WrongType);
