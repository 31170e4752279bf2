//! Runaway plugins are stopped at their limits and the host keeps serving.

use std::time::{Duration, Instant};

use agent_host::{Limits, PluginConfig, TurnError};
use agent_host_tests::{RedisServer, host, load, plugins, probe_ok, turns_at_once};
use serde_json::json;

// A current-thread runtime: the looping plugin and the other turns share one
// thread, so the others finish only if the loop yields.
#[tokio::test(flavor = "current_thread")]
async fn an_endless_loop_is_stopped_at_its_deadline_while_others_are_served() {
    let server = RedisServer::start();
    let host = host(&server);
    let mut limits = Limits::default();
    limits.deadline = Duration::from_millis(1500);
    load(
        &host,
        PluginConfig::new("spin", "t").with_limits(limits),
        plugins::SPIN,
    )
    .await;
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;

    let started = Instant::now();
    let spinning = tokio::spawn({
        let host = host.clone();
        async move { host.run_turn("spin", "s", "go").await }
    });
    tokio::task::yield_now().await;
    for i in 0..10 {
        let v = probe_ok(
            &host,
            "p",
            json!({"op": "increment", "key": "n", "delta": 1}),
        )
        .await;
        assert_eq!(v, json!(i + 1));
    }
    assert!(
        !spinning.is_finished(),
        "the other turns should have finished while the loop was still running"
    );
    let result = spinning.await.unwrap();
    let elapsed = started.elapsed();
    match result {
        Err(TurnError::Deadline { plugin, limit }) => {
            assert_eq!(plugin, "spin");
            assert_eq!(limit, Duration::from_millis(1500));
        }
        other => panic!("expected a deadline error, got {other:?}"),
    }
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "stopped late: {elapsed:?}"
    );
    // And the host still serves.
    let v = probe_ok(
        &host,
        "p",
        json!({"op": "increment", "key": "n", "delta": 1}),
    )
    .await;
    assert_eq!(v, json!(11));
}

#[tokio::test]
async fn unbounded_allocation_is_stopped_at_the_memory_cap() {
    let server = RedisServer::start();
    let host = host(&server);
    let mut limits = Limits::default();
    limits.memory_bytes = 32 << 20;
    load(
        &host,
        PluginConfig::new("hog", "t").with_limits(limits),
        plugins::HOG,
    )
    .await;
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;
    for _ in 0..3 {
        match host.run_turn("hog", "s", "go").await {
            Err(TurnError::MemoryLimit { plugin, limit }) => {
                assert_eq!(plugin, "hog");
                assert_eq!(limit, 32 << 20);
            }
            other => panic!("expected a memory limit error, got {other:?}"),
        }
    }
    let v = probe_ok(
        &host,
        "p",
        json!({"op": "increment", "key": "n", "delta": 1}),
    )
    .await;
    assert_eq!(v, json!(1));
}

#[tokio::test]
async fn bad_turn_arguments_are_typed_errors() {
    let server = RedisServer::start();
    let host = host(&server);
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;
    assert!(matches!(
        host.run_turn("nope", "s", "[]").await,
        Err(TurnError::UnknownPlugin(id)) if id == "nope"
    ));
    for bad in ["", "a\nb", &"x".repeat(513)] {
        assert!(matches!(
            host.run_turn("p", bad, "[]").await,
            Err(TurnError::InvalidSession(_))
        ));
    }
    // The plugin's own error comes back as such.
    match host.run_turn("p", "s", "not json").await {
        Err(TurnError::Plugin { plugin, message }) => {
            assert_eq!(plugin, "p");
            assert!(message.contains("expected"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_plugin_is_refused_with_a_reason() {
    let server = RedisServer::start();
    let host = host(&server);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let err = host
        .load_plugin_file(PluginConfig::new("j", "t"), &junk)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a valid component"), "{err}");
    let err = host
        .load_plugin_file(PluginConfig::new("j", "t"), dir.path().join("missing.wasm"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    let err = host
        .load_plugin_file(PluginConfig::new("j", "bad:prefix"), plugins::PROBE)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("prefix"), "{err}");
    assert!(host.plugins().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn more_turns_than_instance_slots_are_refused_as_busy() {
    let server = RedisServer::start();
    let store = agent_host_tests::store(&server);
    let host = agent_host::Host::builder()
        .store(store)
        .instance_slots(2)
        .build()
        .unwrap();
    let mut limits = Limits::default();
    limits.deadline = Duration::from_millis(500);
    load(
        &host,
        PluginConfig::new("spin", "t").with_limits(limits),
        plugins::SPIN,
    )
    .await;
    let mut running = Vec::new();
    for i in 0..2 {
        let host = host.clone();
        running.push(tokio::spawn(async move {
            host.run_turn("spin", &format!("s{i}"), "x").await
        }));
    }
    // Wait until both hold their slot.
    let both = agent_host_tests::eventually(Duration::from_secs(5), || async {
        host.stats().instances == 2
    })
    .await;
    assert!(both, "the two looping turns never both ran");
    match host.run_turn("spin", "third", "x").await {
        Err(TurnError::Busy { plugin }) => assert_eq!(plugin, "spin"),
        other => panic!("expected busy, got {other:?}"),
    }
    for turn in running {
        assert!(matches!(
            turn.await.unwrap(),
            Err(TurnError::Deadline { .. })
        ));
    }
}

// Two worker threads: on one thread turns take turns by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_what_the_cores_carry_new_turns_are_refused_as_busy_and_admitted_ones_finish() {
    let server = RedisServer::start();
    let store = agent_host_tests::store(&server);
    // One core for guest code, and new turns refused once guest code waits 5 ms
    // for it: two looping turns on two threads share the core, each keeping it
    // for a 20 ms slice, so the other waits that long.
    let host = agent_host::Host::builder()
        .store(store)
        .cores(1)
        .max_queue_delay(Duration::from_millis(5))
        .build()
        .unwrap();
    let mut limits = Limits::default();
    limits.deadline = Duration::from_secs(2);
    load(
        &host,
        PluginConfig::new("spin", "t").with_limits(limits),
        plugins::SPIN,
    )
    .await;
    load(&host, PluginConfig::new("counter", "t"), plugins::COUNTER).await;
    let mut running = Vec::new();
    for i in 0..2 {
        let host = host.clone();
        running.push(tokio::spawn(async move {
            host.run_turn("spin", &format!("s{i}"), "x").await
        }));
    }
    // A turn is admitted or refused by the line at the moment it starts; while
    // the looping turns run it is soon refused, before it runs: nothing written.
    let mut admitted = 0;
    let until = std::time::Instant::now() + Duration::from_secs(1);
    let refused = loop {
        match host.run_turn("counter", "c", "").await {
            Ok(_) => admitted += 1,
            Err(e) => break Some(e),
        }
        if std::time::Instant::now() > until {
            break None;
        }
    };
    let refused = refused.expect("no turn was refused while two looping turns shared one core");
    assert!(
        matches!(refused, TurnError::Overloaded { .. }),
        "{refused:?}"
    );
    assert_eq!(refused.kind(), "busy");
    assert!(refused.to_string().contains("overloaded"), "{refused}");
    // The admitted turns ran to their deadline, not to a store error.
    for turn in running {
        let outcome = turn.await.unwrap();
        assert!(
            matches!(outcome, Err(TurnError::Deadline { .. })),
            "{outcome:?}"
        );
    }
    assert_eq!(host.stats().waiting_for_core, 0);
    let next = host.run_turn("counter", "c", "").await.unwrap();
    assert_eq!(
        next,
        (admitted + 1).to_string(),
        "the refused turn wrote nothing"
    );
}

#[tokio::test]
async fn a_memory_limit_over_the_hosts_maximum_is_refused_at_load() {
    let server = RedisServer::start();
    let store = agent_host_tests::store(&server);
    let host = agent_host::Host::builder()
        .store(store)
        .max_instance_memory(32 << 20)
        .build()
        .unwrap();
    let mut limits = Limits::default();
    limits.memory_bytes = 64 << 20;
    let err = host
        .load_plugin_file(
            PluginConfig::new("p", "t").with_limits(limits),
            plugins::PROBE,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_instance_memory"), "{err}");
}

/// Every turn gets a fresh instance, whether the pool gives finished memory back
/// to the kernel (the default) or keeps it resident and resets it by copying
/// (`keep_resident`): statics, zeroed and initialised, and a zeroed 1 MiB array
/// the previous turn filled are as the component's image has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_turn_starts_from_the_image_whatever_the_pool_keeps() {
    let server = RedisServer::start();
    for keep_resident in [0, 32 << 20] {
        let host = agent_host::Host::builder()
            .store(agent_host_tests::store(&server))
            .keep_resident(keep_resident)
            .instance_slots(4)
            .build()
            .unwrap();
        load(&host, PluginConfig::new("h", "t"), plugins::HOSTILE).await;
        // Four at a time (the slots), ten turns each.
        let answers = turns_at_once(&host, "h", 4, 10, "globals").await;
        assert_eq!(answers.len(), 40);
        for answer in answers {
            assert_eq!(answer, "1 8 0", "keep_resident {keep_resident}");
        }
    }
}

/// An instance slot holds one plugin instance whatever its language: a Python
/// component instantiates 14 core modules, and 8 slots still run 8 Python turns
/// at once (each waits on a model that answers after 300 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_instance_takes_one_slot() {
    let server = RedisServer::start();
    let store = agent_host_tests::store(&server);
    let host = agent_host::Host::builder()
        .store(store)
        .instance_slots(8)
        .cache_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/plugin-cache"
        ))
        .build()
        .unwrap();
    let model = agent_host_tests::model_server::ModelServer::start().await;
    model.set_mode(agent_host_tests::model_server::Mode::Slow(
        Duration::from_millis(300),
    ));
    let config = PluginConfig::new("py", "t")
        .with_env(vec![
            ("MODEL_URL".into(), format!("{}/v1", model.origin())),
            ("MODEL".into(), "small".into()),
        ])
        .with_origin(agent_host::AllowedOrigin::parse(&model.origin()).unwrap());
    load(&host, config, plugins::PY_CHAT).await;
    let turns: Vec<_> = (0..8)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move { host.run_turn("py", &format!("s{i}"), "hi").await })
        })
        .collect();
    for turn in turns {
        let outcome = turn.await.unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}
