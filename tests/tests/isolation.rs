//! Two plugins with different prefixes never see each other's state, whatever ids
//! and keys a guest sends; every accepted id round-trips exactly. On every store
//! (`::redis`, `::cluster`, `::embedded`).

use agent_host::PluginConfig;
use agent_host::keys::INDEX_BUCKETS;
use agent_host_tests::{
    Backend, RedisServer, conformance, load, plugins, probe, probe_err, probe_ok,
};
use serde_json::{Value, json};

fn hostile_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "*",
        "?",
        "[",
        "]",
        "[a-z]",
        "{",
        "}",
        "{}",
        ":",
        "::",
        "\\",
        "a:b",
        "}:state",
        "{tenant-b}",
        "tenant-b",
        "../tenant-b",
        "agent:tenant-b:s:{x}:state",
        "%",
        "%2A",
        "%7B",
        " ",
        "é",
        "🦀",
        "a b",
        "\"quoted\"",
        "-",
        "+",
        "(a",
        "[a",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.push("x".repeat(512));
    ids.push("{".repeat(512));
    ids
}

async fn plugins_with_different_prefixes_cannot_see_each_other(backend: Backend) {
    let host = backend.host();
    load(&host, PluginConfig::new("a", "tenant-a"), plugins::PROBE).await;
    load(&host, PluginConfig::new("b", "tenant-b"), plugins::PROBE).await;
    let ids = hostile_ids();

    let mut writes = Vec::new();
    for id in &ids {
        writes.push(json!({"op": "save", "session": id, "value": format!("A:{id}")}));
        writes.push(json!({"op": "append", "session": id, "items": [format!("A:{id}")]}));
        writes.push(json!({"op": "set", "key": id, "value": format!("A:{id}"), "ttl": null}));
        let short: String = id.chars().take(100).collect();
        writes.push(json!({"op": "increment", "key": format!("n{short}"), "delta": 1}));
    }
    for result in probe(&host, "a", Value::Array(writes)).await {
        assert!(result.get("ok").is_some(), "{result}");
    }

    // Plugin b sees nothing of it, by any route.
    let mut reads = Vec::new();
    for id in &ids {
        reads.push(json!({"op": "load", "session": id}));
        reads.push(json!({"op": "items", "session": id, "last": null}));
        reads.push(json!({"op": "get", "key": id}));
        reads.push(json!({"op": "ttl", "session": id}));
    }
    for result in probe(&host, "b", Value::Array(reads.clone())).await {
        let ok = &result["ok"];
        assert!(ok.is_null() || ok == &json!([]), "b saw {result}");
    }
    for cursor in [
        Value::Null,
        json!("-"),
        json!("+"),
        json!("("),
        json!("["),
        json!("*"),
        json!("a"),
    ] {
        let page = probe_ok(
            &host,
            "b",
            json!({"op": "list", "cursor": cursor, "limit": 1000}),
        )
        .await;
        assert_eq!(page["sessions"], json!([]), "cursor {cursor}");
    }
    // Plugin b's destructive calls on the same ids do not touch a's data.
    let mut wipes = Vec::new();
    for id in &ids {
        wipes.push(json!({"op": "clear", "session": id}));
        wipes.push(json!({"op": "delete", "session": id}));
        wipes.push(json!({"op": "pop", "session": id}));
        wipes.push(json!({"op": "remove", "key": id}));
    }
    for result in probe(&host, "b", Value::Array(wipes)).await {
        let ok = &result["ok"];
        assert!(
            ok == &json!(false) || ok.is_null(),
            "b changed something: {result}"
        );
    }

    // Plugin a gets back exactly what it wrote, for every id.
    let results = probe(&host, "a", Value::Array(reads)).await;
    for (id, chunk) in ids.iter().zip(results.chunks(4)) {
        let expected = format!("A:{id}");
        assert_eq!(chunk[0]["ok"]["value"], json!(expected), "load {id:?}");
        assert_eq!(chunk[1]["ok"], json!([expected]), "items {id:?}");
        assert_eq!(chunk[2]["ok"], json!(expected), "get {id:?}");
    }
    let mut listed = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = probe_ok(
            &host,
            "a",
            json!({"op": "list", "cursor": cursor, "limit": 7}),
        )
        .await;
        listed.extend(page["sessions"].as_array().unwrap().iter().cloned());
        cursor = page["cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    let mut expected: Vec<Value> = ids.iter().map(|i| json!(i)).collect();
    expected.sort_by(|a, b| {
        a.as_str()
            .unwrap()
            .as_bytes()
            .cmp(b.as_str().unwrap().as_bytes())
    });
    assert_eq!(listed, expected);

    // Every key in Redis is under tenant-a's namespace.
    let keys = match &backend {
        Backend::Redis(server) => keys(server).await,
        Backend::Cluster(cluster) => {
            let mut all = Vec::new();
            for node in &cluster.nodes {
                all.extend(keys(node).await);
            }
            all
        }
        Backend::Embedded { .. } => return,
    };
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(key.starts_with("agent:tenant-a:"), "{key}");
    }
    // One state key, one history key and two value keys per id, plus the index keys:
    // three on one server; on a cluster the session index is split into buckets, so
    // up to two per bucket and the value index. The usage ledger: three keys on one
    // server; on a cluster up to three per bucket.
    let (index, rest): (Vec<&String>, Vec<&String>) =
        keys.iter().partition(|k| k.contains(":index:"));
    let (ledger, data): (Vec<&String>, Vec<&String>) =
        rest.into_iter().partition(|k| k.contains(":usage:"));
    assert_eq!(data.len(), ids.len() * 4);
    match backend {
        Backend::Cluster(_) => {
            let index_range = 3..=2 * INDEX_BUCKETS as usize + 1;
            assert!(index_range.contains(&index.len()), "{index:?}");
            let ledger_range = 3..=3 * INDEX_BUCKETS as usize;
            assert!(ledger_range.contains(&ledger.len()), "{ledger:?}");
        }
        _ => {
            assert_eq!(index.len(), 3, "{index:?}");
            assert_eq!(ledger.len(), 3, "{ledger:?}");
        }
    }
}

async fn keys(server: &RedisServer) -> Vec<String> {
    let mut conn = server.conn().await;
    redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn invalid_ids_reach_nothing(backend: Backend) {
    let host = backend.host();
    load(&host, PluginConfig::new("a", "tenant-a"), plugins::PROBE).await;
    for bad in [
        String::new(),
        "\n".into(),
        "a\rb".into(),
        "\u{1b}[31m".into(),
        "nul\u{0}".into(),
        "\u{85}".into(),
        "x".repeat(513),
    ] {
        for op in [
            json!({"op": "save", "session": bad, "value": "v"}),
            json!({"op": "append", "session": bad, "items": ["v"]}),
            json!({"op": "set", "key": bad, "value": "v", "ttl": null}),
            json!({"op": "increment", "key": bad, "delta": 1}),
            json!({"op": "touch", "session": bad, "ttl": 1}),
        ] {
            let (kind, _) = probe_err(&host, "a", op).await;
            assert_eq!(kind, "invalid-key");
        }
    }
    let page = host.list_sessions("a", None, 100).await.unwrap();
    assert!(page.sessions.is_empty(), "{page:?}");
    assert_eq!(backend.store().count_values(&namespace()).await.unwrap(), 0);
    if let Backend::Redis(server) = &backend {
        let mut conn = server.conn().await;
        let n: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        assert_eq!(n, 0, "an invalid id wrote something");
    }
}

fn namespace() -> agent_host::keys::Namespace {
    agent_host::keys::Namespace::new("agent", "tenant-a").unwrap()
}

conformance!(
    plugins_with_different_prefixes_cannot_see_each_other,
    invalid_ids_reach_nothing,
);
