//! Embedding `agent-host` in a Rust service: build a host on your Redis, load a
//! plugin with its policy, run turns, and look at a session.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p embed -- path/to/chat_memory.wasm
//! ```

use std::time::Duration;

use agent_host::{Host, Limits, PluginConfig, RedisOptions, RedisStore};
use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let wasm = std::env::args()
        .nth(1)
        .context("usage: embed PLUGIN.wasm (with REDIS_URL set)")?;
    // The library never reads the environment; the service decides.
    let url = std::env::var("REDIS_URL").context("set REDIS_URL")?;

    let store = RedisStore::open(&url, RedisOptions::default())?;
    let host = Host::builder().store(store).root("embed-demo").build()?;

    let mut limits = Limits::default();
    limits.deadline = Duration::from_secs(2);
    limits.memory_bytes = 32 << 20;
    let config = PluginConfig::new("chat", "customer-42")
        .with_default_ttl(Some(Duration::from_secs(24 * 3600)))
        .with_sliding_ttl(true)
        .with_limits(limits);
    let info = host.load_plugin_file(config, &wasm).await?;
    println!("loaded {} {}", info.name, info.version);

    for input in [
        "I am planning a garden",
        "Which vegetables suit a garden in shade?",
    ] {
        let answer = host.run_turn("chat", "session-1", input).await?;
        println!("> {input}\n{answer}");
    }

    let session = host.inspect("chat", "session-1").await?;
    println!(
        "session-1: state version {:?}, {} history items, expires in {:?}",
        session.state.map(|s| s.version),
        session.history.len(),
        session.ttl.map(|t| Duration::from_secs(t.as_secs())),
    );
    Ok(())
}
