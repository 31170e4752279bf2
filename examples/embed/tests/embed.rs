//! The embedding example runs as documented against a real Redis.

use std::process::Command;

use agent_host_tests::{RedisServer, plugins};

#[test]
fn the_embedding_example_runs_two_turns() {
    let server = RedisServer::start();
    let out = Command::new(env!("CARGO_BIN_EXE_embed"))
        .arg(plugins::CHAT_MEMORY)
        .env("REDIS_URL", server.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("loaded chat-memory"), "{stdout}");
    assert!(stdout.contains("Turn 2."), "{stdout}");
    assert!(
        stdout.contains("state version Some(2), 4 history items"),
        "{stdout}"
    );
}
