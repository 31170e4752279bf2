//! Test plugin that does not build: a syntax error on line 10 (see
//! tests/tests/errors.rs, which makes it a crate; tests/build.rs does not build it).

use agent_sdk::{Agent, Result, Session};

struct Syntax;

impl Agent for Syntax {
    fn handle(_session: &Session, input: &str) -> Result<String> {
        Ok(format!("you said {input}")
    }
}

agent_sdk::export_agent!(Syntax);
