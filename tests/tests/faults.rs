//! Redis going away during a run: the guest gets `unavailable` within a bounded
//! time, the caller a clear error, and the host recovers by itself.

use std::time::{Duration, Instant};

use agent_host::{PluginConfig, TurnError};
use agent_host_tests::{RedisServer, eventually, host, load, plugins, probe_err, probe_ok};
use serde_json::json;

#[tokio::test]
async fn redis_stopped_mid_run_gives_unavailable_and_the_host_recovers() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let host = host(&server);
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;
    load(&host, PluginConfig::new("chat", "t"), plugins::CHAT_MEMORY).await;
    probe_ok(
        &host,
        "p",
        json!({"op": "save", "session": "s", "value": "before"}),
    )
    .await;
    host.run_turn("chat", "c", "first message").await.unwrap();

    server.stop();

    let started = Instant::now();
    let (kind, detail) = probe_err(&host, "p", json!({"op": "load", "session": "s"})).await;
    assert_eq!(kind, "unavailable", "{detail}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "unavailable took {:?}",
        started.elapsed()
    );
    for op in [
        json!({"op": "save", "session": "s", "value": "during"}),
        json!({"op": "append", "session": "s", "items": ["x"]}),
        json!({"op": "list", "cursor": null, "limit": 10}),
        json!({"op": "increment", "key": "n", "delta": 1}),
    ] {
        let (kind, _) = probe_err(&host, "p", op).await;
        assert_eq!(kind, "unavailable");
    }
    // A plugin that gives up on the error: the caller is told why.
    match host.run_turn("chat", "c", "second message").await {
        Err(TurnError::StoreUnavailable { plugin, reason, .. }) => {
            assert_eq!(plugin, "chat");
            assert!(!reason.is_empty());
        }
        other => panic!("expected a store-unavailable error, got {other:?}"),
    }

    server.restart();

    let recovered = eventually(Duration::from_secs(10), || async {
        host.run_turn("p", "probe", r#"[{"op":"load","session":"s"}]"#)
            .await
            .is_ok_and(|answer| answer.contains("before"))
    })
    .await;
    assert!(
        recovered,
        "the host did not recover within 10 s of Redis coming back"
    );
    // The state written before the outage is intact, the failed writes left nothing.
    assert_eq!(
        probe_ok(&host, "p", json!({"op": "load", "session": "s"})).await,
        json!({"value": "before", "version": 1})
    );
    assert_eq!(
        probe_ok(
            &host,
            "p",
            json!({"op": "items", "session": "s", "last": null})
        )
        .await,
        json!([])
    );
    let answer = host.run_turn("chat", "c", "third message").await.unwrap();
    assert!(answer.contains("Turn 2"), "{answer}");
    assert!(answer.contains("first message"), "{answer}");
}

#[tokio::test]
async fn a_host_built_while_redis_is_down_works_once_it_is_up() {
    let mut server = RedisServer::start();
    server.stop();
    let host = host(&server);
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;
    let (kind, _) = probe_err(&host, "p", json!({"op": "get", "key": "k"})).await;
    assert_eq!(kind, "unavailable");
    server.restart();
    let up = eventually(Duration::from_secs(10), || async {
        host.run_turn("p", "probe", r#"[{"op":"increment","key":"k","delta":1}]"#)
            .await
            .is_ok_and(|answer| answer.contains("\"ok\""))
    })
    .await;
    assert!(up, "no recovery within 10 s");
}

#[tokio::test]
async fn the_password_never_reaches_the_guest_or_the_caller() {
    let mut server = RedisServer::start_with_password("hunter2-secret");
    let host = host(&server);
    load(&host, PluginConfig::new("p", "t"), plugins::PROBE).await;
    load(&host, PluginConfig::new("chat", "t"), plugins::CHAT_MEMORY).await;
    probe_ok(
        &host,
        "p",
        json!({"op": "save", "session": "s", "value": "v"}),
    )
    .await;
    server.stop();
    let (_, detail) = probe_err(&host, "p", json!({"op": "load", "session": "s"})).await;
    assert!(!detail.to_string().contains("hunter2"), "{detail}");
    let err = host.run_turn("chat", "c", "hi").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");

    // A wrong password: a clear error without the password in it.
    server.restart();
    let url = server.url().replace("hunter2-secret", "wrong-pass-xyz");
    let store = agent_host::RedisStore::open(&url, agent_host_tests::test_store_options()).unwrap();
    assert!(!format!("{store:?}").contains("wrong-pass-xyz"));
    let err = agent_host::StateStore::ping(&store).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("wrong-pass-xyz"), "{text}");
}
