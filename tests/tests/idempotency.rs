//! Idempotent turns: a retry with the same key and input gets the first answer and
//! runs nothing, on every store, through several hosts at once.

use std::time::Duration;

use agent_host::host::DEFAULT_ROOT;
use agent_host::keys::{Name, Namespace};
use agent_host::{Host, Limits, PluginConfig, TurnAnswer, TurnError, TurnOptions};
use agent_host_tests::{Backend, conformance, eventually, load, plugins};
use sha2::{Digest, Sha256};

conformance!(
    fifty_retries_through_two_hosts_run_the_turn_once,
    retries_that_arrive_while_the_turn_runs_wait_for_its_answer,
    the_same_key_with_another_input_is_refused,
    a_failed_turn_stores_no_record_so_its_retry_runs_again,
    a_key_held_by_a_turn_elsewhere_is_in_progress,
    the_record_expires_after_the_plugins_ttl,
    a_turn_dropped_by_its_caller_gives_its_key_back,
);

async fn keyed(host: &Host, plugin: &str, input: &str, key: &str) -> Result<TurnAnswer, TurnError> {
    host.run_turn_with(plugin, "s", input, TurnOptions::idempotency_key(key))
        .await
}

/// Two hosts on the backend, each with `plugin` loaded as `id` with `config`.
async fn two_hosts(backend: &Backend, config: PluginConfig, plugin: &str) -> [Host; 2] {
    let hosts = [backend.host(), backend.host()];
    for host in &hosts {
        load(host, config.clone(), plugin).await;
    }
    hosts
}

/// The wreck plugin's plugin-wide counter: +1 for every run of it that committed.
async fn wreck_runs(backend: &Backend) -> u64 {
    let ns = Namespace::new(DEFAULT_ROOT, "t").unwrap();
    let value = backend
        .store()
        .get(&ns, &Name::key("counter").unwrap())
        .await
        .unwrap();
    value.map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

/// `n` turns at once with one key, alternating between the hosts.
async fn at_once(
    hosts: &[Host; 2],
    plugin: &'static str,
    input: &'static str,
    n: usize,
) -> Vec<TurnAnswer> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let host = hosts[i % 2].clone();
            tokio::spawn(async move { keyed(&host, plugin, input, "order-42").await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().expect("a retry failed"));
    }
    answers
}

async fn fifty_retries_through_two_hosts_run_the_turn_once(backend: Backend) {
    let hosts = two_hosts(
        &backend,
        PluginConfig::new("counter", "t"),
        plugins::COUNTER,
    )
    .await;
    let answers = at_once(&hosts, "counter", "add one", 50).await;
    // The counter answers its new value: a second run would answer 2.
    assert!(answers.iter().all(|a| a.output == "1"), "{answers:?}");
    let ran = answers.iter().filter(|a| !a.replayed).count();
    assert_eq!(ran, 1, "turns that ran the plugin");
    // The store holds one increment; a turn without a key runs as usual.
    assert_eq!(
        hosts[1].run_turn("counter", "s", "add one").await.unwrap(),
        "2"
    );
    let replay = keyed(&hosts[0], "counter", "add one", "order-42")
        .await
        .unwrap();
    assert_eq!((replay.output.as_str(), replay.replayed), ("1", true));
}

async fn retries_that_arrive_while_the_turn_runs_wait_for_its_answer(backend: Backend) {
    // Each turn of the wreck plugin sleeps 300 ms, then answers and commits: the
    // retries find the first one's claim and wait for its record.
    let hosts = two_hosts(&backend, PluginConfig::new("wreck", "t"), plugins::WRECK).await;
    let answers = at_once(&hosts, "wreck", "slow 300", 10).await;
    assert!(
        answers.iter().all(|a| a.output == "slept 300 ms"),
        "{answers:?}"
    );
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert_eq!(
        wreck_runs(&backend).await,
        1,
        "committed runs of the plugin"
    );
}

async fn the_same_key_with_another_input_is_refused(backend: Backend) {
    let host = backend.host();
    load(&host, PluginConfig::new("counter", "t"), plugins::COUNTER).await;
    let first = keyed(&host, "counter", "add one", "k").await.unwrap();
    assert_eq!((first.output.as_str(), first.replayed), ("1", false));
    let other = keyed(&host, "counter", "add two", "k").await.unwrap_err();
    assert!(
        matches!(other, TurnError::IdempotencyMismatch { .. }),
        "{other:?}"
    );
    assert_eq!(host.run_turn("counter", "s", "x").await.unwrap(), "2");
    // Keys are checked before anything runs.
    for bad in ["", "caf\u{e9}", "new\nline"] {
        let e = keyed(&host, "counter", "add one", bad).await.unwrap_err();
        assert_eq!(e.kind(), "invalid_idempotency_key", "{bad:?}: {e}");
    }
    let long = "k".repeat(256);
    let e = keyed(&host, "counter", "add one", &long).await.unwrap_err();
    assert_eq!(e.kind(), "invalid_idempotency_key");
    assert_eq!(host.run_turn("counter", "s", "x").await.unwrap(), "3");
}

async fn a_failed_turn_stores_no_record_so_its_retry_runs_again(backend: Backend) {
    let host = backend.host();
    load(&host, PluginConfig::new("wreck", "t"), plugins::WRECK).await;
    // A trap writes nothing and gives the key back: the retry runs (and traps).
    for _ in 0..2 {
        let e = keyed(&host, "wreck", "trap", "k1").await.unwrap_err();
        assert!(matches!(e, TurnError::Trap { .. }), "{e:?}");
    }
    assert_eq!(wreck_runs(&backend).await, 0);
    // The plugin's own error commits its writes but stores no answer: the retry
    // runs again and commits again.
    for runs in 1..=2 {
        let e = keyed(&host, "wreck", "no such mode", "k2")
            .await
            .unwrap_err();
        assert!(matches!(e, TurnError::Plugin { .. }), "{e:?}");
        assert_eq!(wreck_runs(&backend).await, runs);
    }
    // A success is stored once.
    for _ in 0..2 {
        let answer = keyed(&host, "wreck", "ok", "k3").await.unwrap();
        assert_eq!(answer.output, "written");
    }
    assert_eq!(wreck_runs(&backend).await, 3);
}

async fn a_key_held_by_a_turn_elsewhere_is_in_progress(backend: Backend) {
    let mut limits = Limits::default();
    limits.deadline = Duration::from_millis(300);
    let config = PluginConfig::new("counter", "t").with_limits(limits);
    let host = backend.host();
    load(&host, config, plugins::COUNTER).await;
    // A host that died while running the turn left its claim (the documented
    // form, `run <token> <SHA-256 of the input>`).
    let store = backend.store();
    let ns = Namespace::new(DEFAULT_ROOT, "t").unwrap();
    let session = Name::session("s").unwrap();
    let digest: String = Sha256::digest(b"add one")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let claim = format!("run 0123456789abcdef {digest}").into_bytes();
    let held = store
        .claim_idempotency(&ns, &session, "k", &claim, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(held, None);

    // The retry waits the plugin's deadline for it, then gives up without running.
    let e = keyed(&host, "counter", "add one", "k").await.unwrap_err();
    match e {
        TurnError::InProgress { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(1));
        }
        other => panic!("expected in progress, got {other:?}"),
    }
    assert_eq!(host.run_turn("counter", "s", "x").await.unwrap(), "1");

    // Once the claim is gone, the keyed turn runs.
    store
        .release_idempotency(&ns, &session, "k", &claim)
        .await
        .unwrap();
    let answer = keyed(&host, "counter", "add one", "k").await.unwrap();
    assert_eq!((answer.output.as_str(), answer.replayed), ("2", false));
}

async fn the_record_expires_after_the_plugins_ttl(backend: Backend) {
    let config = PluginConfig::new("counter", "t").with_idempotency_ttl(Duration::from_millis(300));
    let host = backend.host();
    load(&host, config, plugins::COUNTER).await;
    let first = keyed(&host, "counter", "add one", "k").await.unwrap();
    assert_eq!(first.output, "1");
    // Replayed until the record expires, then run again.
    let ran_again = eventually(Duration::from_secs(10), || async {
        let answer = keyed(&host, "counter", "add one", "k").await.unwrap();
        if answer.replayed {
            assert_eq!(answer.output, "1");
        }
        !answer.replayed
    })
    .await;
    assert!(ran_again, "the record never expired");
    assert_eq!(host.run_turn("counter", "s", "x").await.unwrap(), "3");
}

async fn a_turn_dropped_by_its_caller_gives_its_key_back(backend: Backend) {
    let mut limits = Limits::default();
    limits.deadline = Duration::from_secs(3);
    let config = PluginConfig::new("wreck", "t").with_limits(limits);
    let host = backend.host();
    load(&host, config, plugins::WRECK).await;
    // The caller gives up (a client that disconnects) while the plugin sleeps.
    let dropped = tokio::time::timeout(
        Duration::from_millis(100),
        keyed(&host, "wreck", "slow 300", "k"),
    )
    .await;
    assert!(dropped.is_err(), "the turn should still have been running");
    // Its retry runs at once instead of waiting for the claim to expire (which
    // would answer `in progress` after the plugin's 3 s deadline).
    let answer = keyed(&host, "wreck", "slow 300", "k").await.unwrap();
    assert_eq!(
        (answer.output.as_str(), answer.replayed),
        ("slept 300 ms", false)
    );
    assert_eq!(
        wreck_runs(&backend).await,
        1,
        "the dropped turn wrote nothing"
    );
}
