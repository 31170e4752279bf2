//! Redis killed with SIGKILL in the middle of a load of turns and restarted from its
//! append-only file: every turn the host reported as committed is still there, the
//! turns made while Redis is down fail fast with `unavailable`, and the host
//! recovers by itself.

use std::time::Duration;

use agent_host::PluginConfig;
use agent_host_tests::load::{AppendLoad, missing};
use agent_host_tests::{RedisServer, host, load, plugins};

const WORKERS: usize = 4;
const BEFORE_KILL: usize = 300;
const DOWN_FAILURES: usize = 40;
const AFTER_RESTART: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_turns_survive_a_sigkill_with_appendfsync_always() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let host = host(&server);
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;

    let mut turns = AppendLoad::start(&host, "p", WORKERS, 8, |_| Vec::new());
    turns.until_committed(BEFORE_KILL).await;
    server.stop(); // SIGKILL
    let committed_at_kill = turns.committed.len();
    let failed_before = turns.failed.len();
    while turns.failed.len() - failed_before < DOWN_FAILURES {
        // Committed outcomes here are turns acknowledged just before the kill.
        turns.next().await;
    }
    server.restart();
    let target = turns.committed.len() + AFTER_RESTART;
    let recovered =
        tokio::time::timeout(Duration::from_secs(30), turns.until_committed(target)).await;
    turns.finish().await;
    assert!(recovered.is_ok(), "no recovery within 30 s of the restart");

    let slowest = turns.failures_were_unavailable();
    println!(
        "{} turns committed ({committed_at_kill} before the kill), {} failed while Redis was down, slowest failure {slowest:?}",
        turns.committed.len(),
        turns.failed.len()
    );
    assert!(
        slowest < Duration::from_secs(10),
        "a failing turn took {slowest:?}"
    );
    // Every committed id is in its session's history after the restart.
    let lost = missing(&host, "p", &turns.committed).await;
    assert!(lost.is_empty(), "committed but lost: {lost:?}");
}
