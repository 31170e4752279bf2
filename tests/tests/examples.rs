//! The example plugins through the host: state survives the host, plugin-wide
//! values are shared by the sessions of one prefix and by nobody else.

use std::time::Duration;

use agent_host::PluginConfig;
use agent_host_tests::{RedisServer, host, load, plugins};

#[tokio::test]
async fn chat_memory_remembers_across_hosts() {
    let server = RedisServer::start();
    let config =
        || PluginConfig::new("chat", "tenant-a").with_default_ttl(Some(Duration::from_secs(3600)));
    {
        let host = host(&server);
        let info = host
            .load_plugin_file(config(), plugins::CHAT_MEMORY)
            .await
            .unwrap();
        assert_eq!(info.name, "chat-memory");
        let answer = host
            .run_turn("chat", "alice", "Tell me about weather")
            .await
            .unwrap();
        assert!(answer.starts_with("Turn 1."), "{answer}");
        assert!(answer.contains("start of our conversation"), "{answer}");
    }
    // A new host with a new connection: nothing in memory carries over.
    let host = host(&server);
    load(&host, config(), plugins::CHAT_MEMORY).await;
    let answer = host
        .run_turn("chat", "alice", "More weather please")
        .await
        .unwrap();
    assert!(answer.starts_with("Turn 2."), "{answer}");
    assert!(
        answer.contains("Before that you said: \"Tell me about weather\""),
        "{answer}"
    );
    assert!(answer.contains("weather (2)"), "{answer}");
    // Another session starts fresh.
    let answer = host.run_turn("chat", "bob", "hello").await.unwrap();
    assert!(answer.starts_with("Turn 1."), "{answer}");

    let snapshot = host.inspect("chat", "alice").await.unwrap();
    assert_eq!(snapshot.history.len(), 4);
    assert_eq!(snapshot.state.as_ref().map(|s| s.version), Some(2));
    let ttl = snapshot.ttl.expect("a TTL");
    assert!(ttl > Duration::from_secs(3500) && ttl <= Duration::from_secs(3600));
    let page = host.list_sessions("chat", None, 10).await.unwrap();
    assert_eq!(page.sessions, vec!["alice", "bob"]);
    assert!(host.clear_session("chat", "bob").await.unwrap());
    assert_eq!(
        host.list_sessions("chat", None, 10).await.unwrap().sessions,
        vec!["alice"]
    );
}

#[tokio::test]
async fn notes_share_plugin_wide_values_within_a_tenant_only() {
    let server = RedisServer::start();
    let host = host(&server);
    load(
        &host,
        PluginConfig::new("notes-a", "tenant-a"),
        plugins::NOTES,
    )
    .await;
    load(
        &host,
        PluginConfig::new("notes-b", "tenant-b"),
        plugins::NOTES,
    )
    .await;

    assert_eq!(
        host.run_turn("notes-a", "s1", "add buy milk")
            .await
            .unwrap(),
        "Noted. 1 here, 1 in all sessions."
    );
    assert_eq!(
        host.run_turn("notes-a", "s2", "add call bob")
            .await
            .unwrap(),
        "Noted. 1 here, 2 in all sessions."
    );
    host.run_turn("notes-a", "s1", "add water plants")
        .await
        .unwrap();
    assert_eq!(
        host.run_turn("notes-a", "s1", "list").await.unwrap(),
        "1. buy milk\n2. water plants"
    );
    assert_eq!(
        host.run_turn("notes-a", "s2", "stats").await.unwrap(),
        "3 notes in 2 sessions."
    );
    host.run_turn("notes-a", "s2", "post standup at 10")
        .await
        .unwrap();
    assert_eq!(
        host.run_turn("notes-a", "s1", "board").await.unwrap(),
        "standup at 10"
    );
    assert_eq!(
        host.run_turn("notes-a", "s1", "undo").await.unwrap(),
        "Removed \"water plants\"."
    );
    assert_eq!(
        host.run_turn("notes-a", "s2", "forget").await.unwrap(),
        "Forgot 1 notes."
    );
    assert_eq!(
        host.run_turn("notes-a", "s1", "stats").await.unwrap(),
        "1 notes in 1 sessions."
    );

    // Tenant b has its own board, counter and sessions.
    assert_eq!(
        host.run_turn("notes-b", "s1", "board").await.unwrap(),
        "The board is empty."
    );
    assert_eq!(
        host.run_turn("notes-b", "s1", "list").await.unwrap(),
        "No notes yet."
    );
    assert_eq!(
        host.run_turn("notes-b", "s1", "stats").await.unwrap(),
        "0 notes in 0 sessions."
    );
    let err = host.run_turn("notes-b", "s1", "dance").await.unwrap_err();
    assert!(err.to_string().contains("commands:"), "{err}");
}
