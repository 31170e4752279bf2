//! Test plugin: never returns from `handle`.

use agent_sdk::{Agent, Result, Session};

struct Spin;

impl Agent for Spin {
    fn handle(_session: &Session, _input: &str) -> Result<String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

agent_sdk::export_agent!(Spin);
