//! The `agent-host` binary, run as a user would, against a real Redis.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use agent_host_tests::{RedisServer, plugins};

fn agent_host(args: &[&str], env_url: Option<&str>, stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-host"));
    cmd.args(args)
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = env_url {
        cmd.env("REDIS_URL", url);
    }
    let mut child = cmd.spawn().expect("agent-host runs");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn two_runs_of_one_session_remember_each_other() {
    let server = RedisServer::start();
    let url = server.url();
    let first = agent_host(
        &[
            "run",
            plugins::CHAT_MEMORY,
            "--session",
            "alice",
            "--input",
            "hello world",
            "--store",
            &url,
            "--ttl",
            "7d",
        ],
        None,
        None,
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).starts_with("Turn 1."));
    // Second turn: store from REDIS_URL, input from stdin.
    let second = agent_host(
        &[
            "run",
            plugins::CHAT_MEMORY,
            "--session",
            "alice",
            "--ttl",
            "7d",
        ],
        Some(&url),
        Some("again"),
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    let out = text(&second.stdout);
    assert!(out.starts_with("Turn 2."), "{out}");
    assert!(
        out.contains("Before that you said: \"hello world\""),
        "{out}"
    );
    assert!(text(&second.stderr).is_empty(), "{}", text(&second.stderr));
}

#[test]
fn errors_are_one_line_with_a_failing_exit_code_and_no_password() {
    let mut server = RedisServer::start_with_password("s3cret-pw");
    let url = server.url();
    server.stop();
    let out = agent_host(
        &[
            "run",
            plugins::CHAT_MEMORY,
            "--session",
            "a",
            "--input",
            "hi",
            "--store",
            &url,
        ],
        None,
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("unavailable") && err.contains("connection refused"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw"), "{err}");
    assert!(err.contains("***"), "{err}");

    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "run",
                plugins::CHAT_MEMORY,
                "--session",
                "a",
                "--input",
                "x",
                "--state-file",
                "/proc/no-such-dir/state.redb",
            ],
            "creating the state directory /proc/no-such-dir",
        ),
        (
            &[
                "run",
                "/nonexistent.wasm",
                "--session",
                "a",
                "--input",
                "x",
                "--store",
                "redis://127.0.0.1:1",
            ],
            "unavailable",
        ),
        (
            &[
                "run",
                plugins::CHAT_MEMORY,
                "--session",
                "a",
                "--input",
                "x",
                "--store",
                "nonsense",
            ],
            "invalid store URL",
        ),
        (
            &[
                "run",
                plugins::CHAT_MEMORY,
                "--session",
                "a",
                "--ttl",
                "soon",
                "--store",
                "redis://x",
            ],
            "soon",
        ),
    ];
    for (args, expected) in cases {
        let out = agent_host(args, None, None);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
}

#[test]
fn plugin_failures_are_reported() {
    let server = RedisServer::start();
    let url = server.url();
    let out = agent_host(
        &[
            "run",
            plugins::SPIN,
            "--session",
            "a",
            "--input",
            "x",
            "--store",
            &url,
            "--deadline",
            "300ms",
        ],
        None,
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("deadline of 300ms"), "{err}");

    let out = agent_host(
        &[
            "run",
            plugins::HOG,
            "--session",
            "a",
            "--input",
            "x",
            "--store",
            &url,
            "--memory-mib",
            "16",
        ],
        None,
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("memory limit"),
        "{}",
        text(&out.stderr)
    );

    // An invalid session id is refused before anything runs.
    let out = agent_host(
        &[
            "run",
            plugins::CHAT_MEMORY,
            "--session",
            "",
            "--input",
            "x",
            "--store",
            &url,
        ],
        None,
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("session id"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn without_redis_state_goes_to_the_embedded_file_and_the_admin_commands_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").join("state.redb");
    let state = state.to_str().unwrap();
    for (input, expected) in [("hello world", "Turn 1."), ("again", "Turn 2.")] {
        let out = agent_host(
            &[
                "run",
                plugins::CHAT_MEMORY,
                "--session",
                "alice",
                "--input",
                input,
                "--state-file",
                state,
            ],
            None,
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with(expected),
            "{}",
            text(&out.stdout)
        );
    }

    // The same store and namespace through a config file (`run`'s prefix is the
    // plugin's name, "chat-memory"); the admin commands do not need the tokens'
    // secrets.
    let config = dir.path().join("agent-host.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"state/state.redb\"\n\n[[plugin]]\nid = \"chat\"\nwasm = \"{}\"\nprefix = \"chat-memory\"\n\n\
             [[token]]\ntenant = \"ops\"\nsecret_env = \"AGENT_HOST_TEST_UNSET\"\nplugins = [\"chat\"]\n",
            plugins::CHAT_MEMORY
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let sessions = |args: &[&str]| {
        let mut all = vec!["sessions", "--config", config, "--plugin", "chat"];
        all.extend_from_slice(args);
        agent_host(&all, None, None)
    };
    let out = sessions(&["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "alice\n");
    let out = sessions(&["show", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["history_len"], 4);
    assert_eq!(shown["ttl_ms"], serde_json::Value::Null);
    let out = sessions(&["delete", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sessions(&["show", "alice"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no session \"alice\""),
        "{}",
        text(&out.stderr)
    );
    let out = sessions(&["list"]);
    assert_eq!(text(&out.stdout), "");
    let out = agent_host(
        &["sessions", "--config", config, "--plugin", "nope", "list"],
        None,
        None,
    );
    assert!(
        text(&out.stderr).contains("no plugin \"nope\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn inspect_shows_the_world_of_a_component() {
    let out = agent_host(&["inspect", plugins::CHAT_MEMORY], None, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("  agent:state/agent-state@0.1.3\n"),
        "{shown}"
    );
    assert!(shown.contains("  agent:state/handler@0.1.3\n"), "{shown}");
    assert!(shown.contains("  wasi:cli/"), "{shown}");
    assert!(
        shown.ends_with("fits a world the host serves: yes\n"),
        "{shown}"
    );

    // Python, JavaScript and Rust plugins that send HTTP fit too (wasi:http).
    for plugin in [plugins::PY_CHAT, plugins::JS_CHAT, plugins::LLM_CHAT] {
        let out = agent_host(&["inspect", plugin], None, None);
        let shown = text(&out.stdout);
        assert!(
            out.status.success(),
            "{plugin}: {shown}{}",
            text(&out.stderr)
        );
        assert!(
            shown.contains("  wasi:http/outgoing-handler@0.2."),
            "{shown}"
        );
        assert!(
            shown.ends_with("fits a world the host serves: yes\n"),
            "{shown}"
        );
    }

    // So does a plugin written for wasi:keyvalue alone.
    let out = agent_host(&["inspect", plugins::KV_PROBE], None, None);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(
        shown.contains("  wasi:keyvalue/store@0.2.0-draft2\n")
            && !shown.contains("agent:state/agent-state"),
        "{shown}"
    );
    assert!(
        shown.ends_with("fits a world the host serves: yes\n"),
        "{shown}"
    );

    // A core module is not a component.
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("core.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let out = agent_host(&["inspect", module.to_str().unwrap()], None, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a valid component"),
        "{}",
        text(&out.stderr)
    );
}
