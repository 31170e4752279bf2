//! `agent-host sessions` as an operator runs it on the embedded store: stored
//! documents that are JSON print as JSON values (the others as text, named in
//! `not_json`), and a store file held by a running `agent-host serve` gives an
//! error that says so and which HTTP route to use instead.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use agent_host_tests::plugins;
use serde_json::{Value, json};

use support::Server;

fn agent_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .env_remove("AGENT_HOST_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("agent-host runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A config with the probe plugin under prefix `p`, state in `dir/state.redb`.
fn config(dir: &Path) -> String {
    format!(
        "[store]\npath = \"{}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[plugin]]\nid = \"probe\"\nwasm = \"{}\"\nprefix = \"p\"\n\n\
         [[token]]\ntenant = \"a\"\nsecret_env = \"TEST_TOKEN_B\"\nplugins = [\"probe\"]\n",
        dir.join("state.redb").display(),
        plugins::PROBE
    )
}

fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

#[test]
fn show_and_versions_print_json_documents_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    // Two saves (text, then JSON) and three history items: a JSON string, a text
    // that is not JSON, a JSON number.
    let ops = json!([
        {"op": "save", "session": "s", "value": "plain text"},
        {"op": "save", "session": "s", "value": "{\"items\": [1, \"two\"]}"},
        {"op": "append", "session": "s", "items": ["\"hi\"", "hi", "42"]},
    ]);
    let out = agent_host(&[
        "run",
        plugins::PROBE,
        "--session",
        "s",
        "--prefix",
        "p",
        "--state-file",
        state.to_str().unwrap(),
        "--input",
        &ops.to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = dir.path().join("agent-host.toml");
    std::fs::write(&file, config(dir.path())).unwrap();
    let sessions = |args: &[&str]| {
        let mut all = vec!["sessions", "--config", file.to_str().unwrap(), "--plugin"];
        all.push("probe");
        all.extend_from_slice(args);
        agent_host(&all)
    };

    let shown = json_out(&sessions(&["show", "s"]));
    assert_eq!(shown["state"], json!({"items": [1, "two"]}), "{shown}");
    assert_eq!(shown["history"], json!(["hi", "hi", 42]), "{shown}");
    // "hi" stored as text is told apart from the JSON string "hi".
    assert_eq!(shown["not_json"], json!(["/history/1"]), "{shown}");
    assert_eq!(shown["version"], 2);

    // --raw: the stored text, as the HTTP API shows it.
    let raw = json_out(&sessions(&["show", "s", "--raw"]));
    assert_eq!(raw["state"], "{\"items\": [1, \"two\"]}", "{raw}");
    assert_eq!(raw["history"], json!(["\"hi\"", "hi", "42"]), "{raw}");
    assert!(raw.get("not_json").is_none(), "{raw}");

    let version = json_out(&sessions(&["versions", "s", "--version", "2"]));
    assert_eq!(version["state"], json!({"items": [1, "two"]}), "{version}");
    assert!(version.get("not_json").is_none(), "{version}");
    let version = json_out(&sessions(&["versions", "s", "--version", "2", "--raw"]));
    assert_eq!(version["state"], "{\"items\": [1, \"two\"]}", "{version}");

    // A state that is not JSON stays text, and is named.
    let ops = json!([{"op": "save", "session": "t", "value": "not {json"}]);
    let out = agent_host(&[
        "run",
        plugins::PROBE,
        "--session",
        "t",
        "--prefix",
        "p",
        "--state-file",
        state.to_str().unwrap(),
        "--input",
        &ops.to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = json_out(&sessions(&["show", "t"]));
    assert_eq!(shown["state"], "not {json", "{shown}");
    assert_eq!(shown["not_json"], json!(["/state"]), "{shown}");
}

#[test]
fn a_store_file_held_by_serve_names_the_file_and_the_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent-host.toml");
    std::fs::write(&file, config(dir.path())).unwrap();
    let server = Server::start_in(dir);
    let file = file.to_str().unwrap();
    let store = Path::new(file).with_file_name("state.redb");

    let cases: [(&[&str], &str); 3] = [
        (&["list"], "GET /v1/plugins/probe/sessions "),
        (&["show", "alice"], "GET /v1/plugins/probe/sessions/alice "),
        (&["usage"], "GET /v1/plugins/probe/usage"),
    ];
    for (action, route) in cases {
        let mut args = vec!["sessions", "--config", file, "--plugin", "probe"];
        args.extend_from_slice(action);
        let out = agent_host(&args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{action:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: the store file "), "{err}");
        assert!(err.contains(&store.display().to_string()), "{err}");
        assert!(err.contains("open in another process"), "{err}");
        assert!(err.contains("agent-host serve"), "{err}");
        assert!(err.contains(route), "{action:?}: {err}");
        assert!(err.contains("docs/http-api.md"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = agent_host(&["usage", "--config", file]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("GET /v1/usage"), "{err}");

    // Once the server stops, the same command works.
    let _dir = server.stop();
    let out = agent_host(&["sessions", "--config", file, "--plugin", "probe", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
