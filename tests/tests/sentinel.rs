//! A Sentinel failover during a load of turns: the primary is killed, the sentinels
//! promote a replica, the host finds the new primary by itself, and every turn it
//! reported committed (with `WAIT` for one replica) is on the new primary.

use std::time::{Duration, Instant};

use agent_host::{Host, PluginConfig, RedisStore};
use agent_host_tests::load::{AppendLoad, missing};
use agent_host_tests::sentinel::SentinelSet;
use agent_host_tests::{load, plugins, test_store_options};

const WORKERS: usize = 4;
const BEFORE: usize = 200;
const AFTER: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_during_turns_loses_no_acknowledged_commit() {
    let mut set = SentinelSet::start().await;
    let old_port = set.primary.port();
    assert_eq!(set.primary_port().await, Some(old_port));
    let mut options = test_store_options();
    options.wait_replicas = 1;
    let store = RedisStore::open(&set.url(), options).expect("store");
    let host = Host::builder().store(store).build().unwrap();
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;

    let mut turns = AppendLoad::start(&host, "p", WORKERS, 4, |_| Vec::new());
    turns.until_committed(BEFORE).await;
    let killed_at = Instant::now();
    set.primary.stop(); // SIGKILL
    let at_kill = turns.committed.len();
    let recovered = tokio::time::timeout(
        Duration::from_secs(60),
        turns.until_committed(at_kill + AFTER),
    )
    .await;
    let took = killed_at.elapsed();
    turns.finish().await;
    assert!(
        recovered.is_ok(),
        "no turns committed within 60 s of the kill"
    );
    let new_port = set
        .primary_port()
        .await
        .expect("the sentinels name a primary");
    assert_ne!(new_port, old_port, "no failover happened");
    assert!(
        set.replicas.iter().any(|r| r.port() == new_port),
        "a replica was promoted"
    );
    println!(
        "failover: {} turns committed ({at_kill} before the kill), {} failed, \
         {AFTER} more committed {took:?} after the kill; new primary on port {new_port}",
        turns.committed.len(),
        turns.failed.len()
    );
    turns.failures_were_unavailable();

    // Every acknowledged id is on the new primary (the host now reads from it).
    let lost = missing(&host, "p", &turns.committed).await;
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}
