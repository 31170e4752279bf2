//! Production set-ups on real local servers: ACL users and TLS (with client
//! certificates). Sentinel failover is in `sentinel.rs`.

use std::path::PathBuf;

use agent_host::{Host, PluginConfig, RedisOptions, RedisStore, TurnError};
use agent_host_tests::tls::TestCa;
use agent_host_tests::{RedisServer, load, plugins, test_store_options};

async fn chat_host(url: &str, options: RedisOptions, root: &str) -> Host {
    let store = RedisStore::open(url, options).expect("store");
    let host = Host::builder().store(store).root(root).build().unwrap();
    load(
        &host,
        PluginConfig::new("chat", "tenant-a"),
        plugins::CHAT_MEMORY,
    )
    .await;
    host
}

fn store_error(result: Result<String, TurnError>) -> String {
    match result {
        Err(e @ TurnError::StoreUnavailable { .. }) => e.to_string(),
        other => panic!("expected the store to be unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn an_acl_user_limited_to_the_host_keys_runs_it_and_nothing_else() {
    const PASSWORD: &str = "agent-pa55-0123";
    let server = RedisServer::start();
    let mut admin = server.conn().await;
    // Only keys under the host's root, only data and scripting commands.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("agent")
        .arg("on")
        .arg(format!(">{PASSWORD}"))
        .arg("resetkeys")
        .arg("~agent:*")
        .arg("resetchannels")
        .arg("-@all")
        .arg("+@read")
        .arg("+@write")
        .arg("+@scripting")
        .arg("+@connection")
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://agent:{PASSWORD}@127.0.0.1:{}", server.port());

    let host = chat_host(&url, test_store_options(), "agent").await;
    for input in ["hello there", "more"] {
        host.run_turn("chat", "alice", input).await.unwrap();
    }
    let snapshot = host.inspect("chat", "alice").await.unwrap();
    assert_eq!(snapshot.state.map(|s| s.version), Some(2));
    let page = host.list_sessions("chat", None, 10).await.unwrap();
    assert_eq!(page.sessions, vec!["alice".to_string()]);

    // The same user under another root: the server refuses, the error says why.
    let outside = chat_host(&url, test_store_options(), "other").await;
    let err = store_error(outside.run_turn("chat", "alice", "hi").await);
    assert!(
        err.contains("permission denied by the server's ACL"),
        "{err}"
    );

    // Wrong password: a clear error without the password.
    let wrong = format!("redis://agent:not-{PASSWORD}@127.0.0.1:{}", server.port());
    let host = chat_host(&wrong, test_store_options(), "agent").await;
    let err = store_error(host.run_turn("chat", "alice", "hi").await);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

fn tls_options(ca: PathBuf, client: Option<(PathBuf, PathBuf)>) -> RedisOptions {
    let mut options = test_store_options();
    options.tls_ca = Some(ca);
    options.tls_client_cert = client;
    options
}

#[tokio::test]
async fn tls_with_a_ca_file_and_a_client_certificate() {
    let server = RedisServer::start_tls();
    let files = server.tls().unwrap().clone();
    let url = server.url();
    assert!(url.starts_with("rediss://"));
    let client = Some((files.client_cert.clone(), files.client_key.clone()));

    let host = chat_host(&url, tls_options(files.ca.clone(), client.clone()), "agent").await;
    host.run_turn("chat", "alice", "hello over TLS")
        .await
        .unwrap();
    let mut conn = server.conn().await;
    let version: Option<u64> = redis::cmd("HGET")
        .arg("agent:tenant-a:s:{alice}:state")
        .arg("ver")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, Some(1));

    // A CA that did not sign the server's certificate: refused, and the error says
    // it is the certificate.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    TestCa::new("someone else's CA").write_cert(&other_ca);
    let host = chat_host(&url, tls_options(other_ca, client), "agent").await;
    let err = store_error(host.run_turn("chat", "alice", "hi").await);
    println!("wrong CA: {err}");
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");

    // Without the client certificate the server refuses the connection.
    let host = chat_host(&url, tls_options(files.ca.clone(), None), "agent").await;
    let err = store_error(host.run_turn("chat", "alice", "hi").await);
    println!("no client certificate: {err}");
    assert!(err.contains("unavailable"), "{err}");

    // A missing CA file is an error when the store is opened.
    let err = RedisStore::open(&url, tls_options(dir.path().join("nope.pem"), None)).unwrap_err();
    assert!(
        err.to_string().contains("cannot read the TLS CA file"),
        "{err}"
    );
}
