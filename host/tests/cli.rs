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
            ],
            "no store",
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
