//! A Redis Cluster under a load of turns while slots move between primaries
//! (`redis-cli --cluster reshard`): every turn commits (the client follows the
//! redirects; nothing surfaces to the caller) and every committed item is there.
//! The conformance suite runs on a cluster too (`conformance.rs`, `::cluster`).

use std::sync::Arc;

use agent_host::{Host, PluginConfig, RedisStore};
use agent_host_tests::cluster::RedisCluster;
use agent_host_tests::load::{AppendLoad, missing};
use agent_host_tests::{load, plugins, test_store_options};
use serde_json::{Value, json};

const WORKERS: usize = 4;
const SESSIONS_PER_WORKER: u64 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_keep_committing_while_slots_move() {
    let cluster = Arc::new(RedisCluster::start());
    let store = RedisStore::open(&cluster.url(), test_store_options()).expect("store");
    let host = Host::builder().store(store).build().unwrap();
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;

    // Each turn also adds 1 to its worker's plugin-wide counter (another slot).
    let mut turns = AppendLoad::start(&host, "p", WORKERS, SESSIONS_PER_WORKER, |w| {
        vec![json!({"op": "increment", "key": format!("count-{w}"), "delta": 1})]
    });
    turns.until_committed(200).await;
    let mover = cluster.clone();
    let mut reshard = tokio::task::spawn_blocking(move || mover.reshard(2000));
    let during = turns.committed.len();
    let output = loop {
        tokio::select! {
            out = &mut reshard => break out.unwrap(),
            () = turns.next() => {}
        }
    };
    assert!(
        output.status.success(),
        "reshard failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let moved_during = turns.committed.len() - during;
    turns.until_committed(turns.committed.len() + 200).await;
    turns.finish().await;
    println!(
        "{} turns committed, {moved_during} while 2000 slots moved; errors: {}",
        turns.committed.len(),
        turns.failed.len()
    );
    assert!(
        turns.failed.is_empty(),
        "turns failed: {:?}",
        &turns.failed[..turns.failed.len().min(5)]
    );
    // Some of the sessions did live in the slots that moved (0..2000 of the first
    // node), so their keys migrated under the load.
    let mut conn = cluster.nodes[0].conn().await;
    let mut moved = 0;
    for w in 0..WORKERS {
        for n in 0..SESSIONS_PER_WORKER {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(format!("agent:t:s:{{w{w}-{n}}}:state"))
                .query_async(&mut conn)
                .await
                .unwrap();
            moved += u32::from(slot < 2000);
        }
    }
    println!("{moved} of the sessions were in the moved slots");
    assert!(moved > 0);

    // Every committed item is in its session, and the counters add up.
    let lost = missing(&host, "p", &turns.committed).await;
    assert!(lost.is_empty(), "committed but lost: {lost:?}");
    let ops = json!(
        (0..WORKERS)
            .map(|w| json!({"op": "get", "key": format!("count-{w}")}))
            .collect::<Vec<_>>()
    );
    let answer = host.run_turn("p", "check", &ops.to_string()).await.unwrap();
    let results: Vec<Value> = serde_json::from_str(&answer).unwrap();
    let total: u64 = results
        .iter()
        .map(|r| {
            r["ok"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(total, turns.committed.len() as u64, "{results:?}");
}
