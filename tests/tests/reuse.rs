//! Instance reuse, opt-in per plugin (`PluginConfig::with_instance_reuse`): an
//! instance serves up to N turns, one at a time, and is thrown away after a turn
//! that did not commit; state calls stay per session (`cargo test --test reuse`).

use std::time::Duration;

use agent_host::{AllowedOrigin, Host, Limits, PluginConfig, TurnError};
use agent_host_tests::model_server::ModelServer;
use agent_host_tests::{RedisServer, load, plugins, turns_at_once};

fn host(server: &RedisServer) -> Host {
    Host::builder()
        .store(agent_host_tests::store(server))
        .build()
        .unwrap()
}

/// What the hostile plugin's `globals` mode answers in an instance's `n`th turn:
/// its counters went up once per earlier turn, and its 1 MiB array was filled.
fn globals_after(n: u32) -> String {
    let dirty = if n == 1 { 0 } else { 1 << 20 };
    format!("{n} {} {dirty}", 7 + n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_serves_its_turns_then_a_fresh_one_follows() {
    let server = RedisServer::start();
    let host = host(&server);
    let config = PluginConfig::new("h", "t").with_instance_reuse(3);
    load(&host, config, plugins::HOSTILE).await;
    let mut answers = Vec::new();
    for session in ["a", "b", "a", "c", "b", "a", "c"] {
        answers.push(host.run_turn("h", session, "globals").await.unwrap());
    }
    // Turns 1-3 in one instance, 4-6 in the next, whatever their sessions.
    let expected: Vec<String> = [1, 2, 3, 1, 2, 3, 1].map(globals_after).into();
    assert_eq!(answers, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reuse_every_turn_is_fresh() {
    let server = RedisServer::start();
    let host = host(&server);
    for reuse in [0, 1] {
        let config = PluginConfig::new("h", "t").with_instance_reuse(reuse);
        load(&host, config, plugins::HOSTILE).await;
        for _ in 0..3 {
            let answer = host.run_turn("h", "a", "globals").await.unwrap();
            assert_eq!(answer, globals_after(1), "instance_reuse {reuse}");
        }
    }
}

/// A turn that does not commit (here: stopped at its deadline) throws its instance
/// away; a plugin error commits, and its instance is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_dropped_after_a_turn_that_did_not_commit() {
    let server = RedisServer::start();
    let host = host(&server);
    let mut limits = Limits::default();
    limits.deadline = Duration::from_millis(300);
    let config = PluginConfig::new("h", "t")
        .with_limits(limits)
        .with_instance_reuse(100);
    load(&host, config, plugins::HOSTILE).await;
    assert_eq!(
        host.run_turn("h", "a", "globals").await.unwrap(),
        globals_after(1)
    );
    let e = host.run_turn("h", "a", "error 3").await.unwrap_err();
    assert!(matches!(e, TurnError::Plugin { .. }), "{e}");
    assert_eq!(
        host.run_turn("h", "a", "globals").await.unwrap(),
        globals_after(2)
    );
    let e = host
        .run_turn("h", "a", "load-save-spin 5000")
        .await
        .unwrap_err();
    assert!(matches!(e, TurnError::Deadline { .. }), "{e}");
    assert_eq!(
        host.run_turn("h", "a", "globals").await.unwrap(),
        globals_after(1)
    );
}

/// Concurrent turns never share an instance: 4 at a time make at most 4 instances
/// for 40 turns, and every turn succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_turns_take_instances_one_at_a_time() {
    let server = RedisServer::start();
    let host = host(&server);
    let config = PluginConfig::new("h", "t").with_instance_reuse(1000);
    load(&host, config, plugins::HOSTILE).await;
    let answers = turns_at_once(&host, "h", 4, 10, "globals").await;
    assert_eq!(answers.len(), 40);
    let fresh = answers.iter().filter(|a| **a == globals_after(1)).count();
    assert!(
        (1..=4).contains(&fresh),
        "{fresh} fresh instances for 40 turns"
    );
}

/// State stays per session in a reused instance: two sessions' counters, turn
/// after turn in one instance, and the chat agent in every language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_calls_stay_per_session_in_every_language() {
    let server = RedisServer::start();
    let host = host(&server);
    let config = PluginConfig::new("counter", "t").with_instance_reuse(100);
    load(&host, config, plugins::COUNTER).await;
    for (session, expected) in [("a", "1"), ("b", "1"), ("a", "2"), ("b", "2"), ("a", "3")] {
        assert_eq!(
            host.run_turn("counter", session, "").await.unwrap(),
            expected
        );
    }
    let model = ModelServer::start().await;
    for (id, wasm) in [
        ("rust", plugins::LLM_CHAT),
        ("python", plugins::PY_CHAT),
        ("javascript", plugins::JS_CHAT),
    ] {
        let config = PluginConfig::new(id, "chat")
            .with_env(vec![
                ("MODEL_URL".into(), format!("{}/v1", model.origin())),
                ("MODEL".into(), "small".into()),
            ])
            .with_origin(AllowedOrigin::parse(&model.origin()).unwrap())
            .with_instance_reuse(100);
        load(&host, config, wasm).await;
        for (session, input, messages) in [("a", "one", 2), ("b", "hi", 2), ("a", "two", 4)] {
            let session = format!("{id}-{session}");
            assert_eq!(
                host.run_turn(id, &session, input).await.unwrap(),
                format!("You said {input:?}; I saw {messages} messages."),
                "{id}"
            );
        }
    }
}
