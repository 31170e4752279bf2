//! Test plugin: allocates 1 MiB blocks until it is stopped.

use agent_sdk::{Agent, Result, Session};

struct Hog;

impl Agent for Hog {
    fn handle(_session: &Session, _input: &str) -> Result<String> {
        let mut blocks = Vec::new();
        loop {
            blocks.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&blocks);
        }
    }
}

agent_sdk::export_agent!(Hog);
