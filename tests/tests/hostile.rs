//! The adversarial suite, library side: a hostile plugin cannot stretch its
//! deadline, return unbounded answers, be misreported, or starve other plugins
//! (`cargo test --test hostile`). The log and HTTP sides are in
//! `host/tests/hostile_serve.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent_host::keys::{Name, Namespace};
use agent_host::store::{Commit, Expiry, ExpiryChange, SessionCommit, StateChange};
use agent_host::{Limits, PluginConfig, TurnError};
use agent_host_tests::{Backend, conformance, eventually, load, plugins};
use tokio::task::JoinSet;

/// Conflict retries share the turn's deadline: a turn whose session keeps changing
/// under it is stopped at its deadline, not given a fresh one per attempt (8
/// attempts of 300 ms each would run 2.4 s and end as a conflict).
async fn retries_share_the_turns_deadline(backend: Backend) {
    let host = backend.host();
    let mut limits = Limits::default();
    limits.deadline = Duration::from_millis(1000);
    let config = PluginConfig::new("h", "hostile").with_limits(limits);
    load(&host, config, plugins::HOSTILE).await;

    // Another writer changes the session all the time, outside the host's turns.
    let store = host.store().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let ns = Namespace::new("agent", "hostile").unwrap();
            let mut version = 1_000;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                let commit = Commit {
                    sessions: vec![SessionCommit {
                        session: Name::session("hot").unwrap(),
                        expect_version: None,
                        expect_history_len: None,
                        clear: false,
                        state: StateChange::Put {
                            value: b"other".to_vec(),
                            version,
                        },
                        pops: 0,
                        append: Vec::new(),
                        expiry: ExpiryChange::Set(Expiry::Never),
                        idempotency: None,
                        keep_versions: 0,
                    }],
                    ..Commit::default()
                };
                store.commit(&ns, commit).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    let outcome = host.run_turn("h", "hot", "load-save-spin 300").await;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    match outcome {
        Err(TurnError::Deadline { .. }) => {}
        other => panic!("expected the turn's deadline, got {other:?} after {took:?}"),
    }
    assert!(host.stats().attempts >= 2, "{:?}", host.stats());
}

/// An answer or error text over `max_output_bytes` fails the turn with a typed
/// error and writes nothing; at the limit it passes.
async fn answers_over_the_output_limit_are_refused(backend: Backend) {
    let host = backend.host();
    let mut limits = Limits::default();
    limits.max_output_bytes = 1000;
    load(
        &host,
        PluginConfig::new("small", "hostile").with_limits(limits),
        plugins::HOSTILE,
    )
    .await;
    load(
        &host,
        PluginConfig::new("default", "hostile"),
        plugins::HOSTILE,
    )
    .await;
    assert_eq!(
        host.run_turn("small", "s", "answer 1000")
            .await
            .unwrap()
            .len(),
        1000
    );
    for (plugin, input, size) in [
        ("small", "answer 1001", 1001),
        ("small", "error 5000", 5000),
        ("default", "answer 2000000", 2_000_000),
    ] {
        match host.run_turn(plugin, "s", input).await {
            Err(e @ TurnError::OutputTooLarge { .. }) => {
                assert_eq!(e.kind(), "output_too_large");
                assert!(e.to_string().contains(&size.to_string()), "{e}");
            }
            other => panic!("{input}: {:?}", other.map(|a| a.len())),
        }
    }
    // `append-many` answers with the history length: over the limit, nothing lands.
    let mut limits = Limits::default();
    limits.max_output_bytes = 1;
    load(
        &host,
        PluginConfig::new("tiny", "hostile").with_limits(limits),
        plugins::HOSTILE,
    )
    .await;
    let e = host
        .run_turn("tiny", "w", "append-many 10")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "output_too_large");
    assert!(!host.inspect("tiny", "w").await.unwrap().exists);
}

/// A plugin refused memory that then runs past its deadline was stopped by the
/// deadline, and is reported so.
async fn refused_memory_then_the_deadline_is_a_deadline(backend: Backend) {
    let host = backend.host();
    let mut limits = Limits::default();
    limits.deadline = Duration::from_millis(300);
    load(
        &host,
        PluginConfig::new("h", "hostile").with_limits(limits),
        plugins::HOSTILE,
    )
    .await;
    let e = host.run_turn("h", "s", "grow-then-spin").await.unwrap_err();
    assert_eq!(e.kind(), "deadline", "{e}");
    // A refused growth alone is not an error: the plugin answers.
    assert_eq!(
        host.run_turn("h", "s", "grow 1000").await.unwrap(),
        "1000 refused"
    );
}

/// One plugin at its concurrency limit gets `busy` at once for the turns beyond it,
/// and another plugin's turn runs meanwhile: it finishes while the first plugin's
/// endless turns are still running.
async fn a_plugin_at_its_concurrency_limit_does_not_starve_others(backend: Backend) {
    let host = backend.host();
    let mut limits = Limits::default();
    limits.deadline = Duration::from_secs(3);
    limits.max_concurrent_turns = 4;
    load(
        &host,
        PluginConfig::new("loops", "tenant-a").with_limits(limits),
        plugins::SPIN,
    )
    .await;
    load(
        &host,
        PluginConfig::new("quick", "tenant-b"),
        plugins::HOSTILE,
    )
    .await;

    let mut loops = JoinSet::new();
    for i in 0..200 {
        let host = host.clone();
        loops.spawn(async move {
            let outcome = host.run_turn("loops", &format!("s{i}"), "").await;
            (outcome, Instant::now())
        });
    }
    let running = eventually(Duration::from_secs(10), || async {
        host.stats().instances >= 4
    })
    .await;
    assert!(
        running,
        "the looping turns did not start: {:?}",
        host.stats()
    );
    let answer = host.run_turn("quick", "s", "answer 3").await.unwrap();
    let quick_done = Instant::now();
    assert_eq!(answer, "aaa");

    let (mut busy, mut stopped) = (0, 0);
    while let Some(result) = loops.join_next().await {
        match result.unwrap() {
            (Err(TurnError::Busy { .. }), _) => busy += 1,
            (Err(TurnError::Deadline { .. }), at) => {
                stopped += 1;
                assert!(
                    at > quick_done,
                    "a looping turn ended before the other plugin's turn"
                );
            }
            (other, _) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((busy, stopped), (196, 4));
}

conformance!(
    retries_share_the_turns_deadline,
    answers_over_the_output_limit_are_refused,
    refused_memory_then_the_deadline_is_a_deadline,
    a_plugin_at_its_concurrency_limit_does_not_starve_others,
);
