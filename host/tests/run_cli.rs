//! `agent-host run` without a config file: each plugin in its own prefix, a model
//! reached with `--env` and `--allow`, the cache kept under `--cache-max`; and
//! `inspect`, which reads a component without compiling it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use agent_host_tests::model_server::ModelServer;
use agent_host_tests::plugins;

/// `agent-host ARGS` with the embedded store in `dir`, the cache in `dir`, and
/// `env` added to its environment.
fn agent_host(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-host"));
    cmd.args(args)
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .env("AGENT_HOST_STATE", dir.join("state.redb"))
        .env("AGENT_HOST_CACHE", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().expect("agent-host runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs one turn and returns its answer, failing with stderr if it failed.
fn turn(dir: &Path, plugin: &str, session: &str, input: &str) -> String {
    let out = agent_host(
        dir,
        &["run", plugin, "--session", session, "--input", input],
        &[],
    );
    assert!(out.status.success(), "{plugin}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Two plugins run with `run` on one store do not see each other's sessions:
/// each gets the prefix of its name (`describe`), so a renamed copy of the file
/// keeps its sessions and `--prefix` still picks one by hand. (Before, every
/// plugin ran under `default`: notes counted chat-memory's messages as notes.)
#[test]
fn plugins_run_with_run_keep_their_sessions_apart() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let first = turn(dir, plugins::CHAT_MEMORY, "alice", "hello world");
    assert!(first.starts_with("Turn 1."), "{first}");
    let noted = turn(dir, plugins::NOTES, "alice", "add buy flour");
    assert_eq!(noted, "Noted. 1 here, 1 in all sessions.\n");
    assert_eq!(turn(dir, plugins::NOTES, "alice", "list"), "1. buy flour\n");
    let second = turn(dir, plugins::CHAT_MEMORY, "alice", "again");
    assert!(second.starts_with("Turn 2."), "{second}");
    assert!(
        second.contains("Before that you said: \"hello world\""),
        "{second}"
    );

    // The prefix is the plugin's name, not the file's: a copy under another
    // name continues the session.
    let copy = dir.join("renamed.wasm");
    std::fs::copy(plugins::CHAT_MEMORY, &copy).unwrap();
    let third = turn(dir, copy.to_str().unwrap(), "alice", "and again");
    assert!(third.starts_with("Turn 3."), "{third}");

    // What the README says the prefix is: the admin commands find the sessions
    // under `chat-memory` and `notes`.
    let config = dir.join("agent-host.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"state.redb\"\n\n\
             [[plugin]]\nid = \"chat\"\nwasm = \"{}\"\nprefix = \"chat-memory\"\n\n\
             [[plugin]]\nid = \"notes\"\nwasm = \"{}\"\nprefix = \"notes\"\n",
            plugins::CHAT_MEMORY,
            plugins::NOTES,
        ),
    )
    .unwrap();
    for (id, history_len) in [("chat", 6), ("notes", 1)] {
        let config = config.to_str().unwrap();
        let args = [
            "sessions", "--config", config, "--plugin", id, "show", "alice",
        ];
        let out = agent_host(dir, &args, &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["history_len"], history_len, "{id}: {shown}");
    }

    // --prefix still chooses: a fresh prefix is a fresh conversation.
    let out = agent_host(
        dir,
        &[
            "run",
            plugins::CHAT_MEMORY,
            "--session",
            "alice",
            "--input",
            "hi",
            "--prefix",
            "tenant-b",
        ],
        &[],
    );
    assert!(
        text(&out.stdout).starts_with("Turn 1."),
        "{}",
        text(&out.stderr)
    );
}

/// `--env` sets the plugin's environment and `--allow` lets it reach its model,
/// with the key read from this process's environment and added by the host; the
/// key is never printed, even with -vv. Without `--allow` the request is denied.
#[tokio::test(flavor = "multi_thread")]
async fn run_reaches_a_model_with_env_and_allow() {
    let model = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let url = format!("MODEL_URL={}/v1", model.origin());
    let allow = format!(
        "{}=Authorization:Bearer ${{env:TEST_MODEL_KEY}}",
        model.origin()
    );
    let run = move |allow: Option<String>| {
        let root = root.clone();
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "-vv",
                "run",
                plugins::LLM_CHAT,
                "--session",
                "alice",
                "--input",
                "Hi, I bake sourdough.",
                "--env",
                &url,
                "--env",
                "MODEL=test-model",
            ];
            if let Some(allow) = &allow {
                args.extend(["--allow", allow]);
            }
            agent_host(&root, &args, &[("TEST_MODEL_KEY", "sk-test-s3cret")])
        })
    };

    let denied = run(None).await.unwrap();
    assert!(!denied.status.success());
    assert!(
        text(&denied.stderr).contains("the model is unavailable"),
        "{}",
        text(&denied.stderr)
    );
    assert!(model.requests().is_empty());

    let out = run(Some(allow)).await.unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "You said \"Hi, I bake sourdough.\"; I saw 2 messages.\n"
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer sk-test-s3cret")
    );
    assert_eq!(requests[0].json()["model"], "test-model");
    assert!(
        !stdout.contains("s3cret") && !stderr.contains("s3cret"),
        "{stderr}"
    );
}

/// A bad `--env` or `--allow` is one line on stderr and a failing exit code,
/// before anything runs; a header value never appears in it.
#[test]
fn bad_env_and_allow_flags_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let run = |flag: &str, value: &str| {
        let args = [
            "run",
            plugins::CHAT_MEMORY,
            "--session",
            "s",
            "--input",
            "x",
            flag,
            value,
        ];
        let out = agent_host(dir, &args, &[("TEST_KEY", "sk-s3cret")]);
        assert!(!out.status.success(), "{flag} {value}");
        assert!(out.stdout.is_empty());
        text(&out.stderr)
    };
    for (flag, value, expected) in [
        (
            "--env",
            "MODEL",
            "error: --env \"MODEL\": write NAME=VALUE\n",
        ),
        (
            "--allow",
            "https://api.example.com=Authorization:Bearer ${env:NOT_SET_ANYWHERE}",
            "error: --allow https://api.example.com: secret header Authorization: \
             environment variable NOT_SET_ANYWHERE is not set\n",
        ),
        (
            "--allow",
            "https://api.example.com/v1",
            "error: --allow origin \"https://api.example.com/v1\": an origin has no path, \
             query, or user; write scheme://host[:port]\n",
        ),
        (
            "--allow",
            "https://api.example.com=Authorization",
            "error: --allow https://api.example.com: write ORIGIN=HEADER:VALUE, e.g. \
             https://api.example.com=Authorization:Bearer ${env:API_KEY}\n",
        ),
    ] {
        assert_eq!(run(flag, value), expected);
    }
    for value in [
        "https://api.example.com=Bad Header:sk-s3cret",
        "https://api.example.com=X-Key:sk-s3cret\u{7f}",
        "*=Authorization:Bearer ${env:TEST_KEY}",
    ] {
        let error = run("--allow", value);
        assert!(error.starts_with("error: --allow "), "{error}");
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}

/// `--cache-max` bounds the cache: with room for one artifact, running a second
/// plugin evicts the first.
#[test]
fn run_keeps_the_cache_under_cache_max() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let artifacts = || std::fs::read_dir(dir.join("cache")).unwrap().count();
    for plugin in [plugins::CHAT_MEMORY, plugins::NOTES] {
        let args = ["run", plugin, "--session", "s", "--input", "list"];
        assert!(agent_host(dir, &args, &[]).status.success());
    }
    assert_eq!(artifacts(), 2);
    let args = [
        "run",
        plugins::COUNTER,
        "--session",
        "s",
        "--input",
        "x",
        "--cache-max",
        "1B",
    ];
    let out = agent_host(dir, &args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(artifacts(), 1);
    let args = [
        "run",
        plugins::NOTES,
        "-s",
        "s",
        "-i",
        "x",
        "--cache-max",
        "lots",
    ];
    let out = agent_host(dir, &args, &[]);
    assert!(
        text(&out.stderr).contains("\"lots\" is not a size"),
        "{}",
        text(&out.stderr)
    );
}

/// `inspect` names the world of the Python and JavaScript chat components
/// without compiling them: no "compiling the component" line at -vv (which a
/// compile logs, as the first `run` here shows), and well under the 15-23 s a
/// compile of one of them takes in a debug build.
#[test]
fn inspect_reads_a_component_without_compiling_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let args = [
        "-vv",
        "run",
        "--no-cache",
        plugins::CHAT_MEMORY,
        "-s",
        "a",
        "-i",
        "x",
    ];
    let compiled = agent_host(dir, &args, &[]);
    assert!(
        text(&compiled.stderr).contains("compiling the component"),
        "{}",
        text(&compiled.stderr)
    );
    for plugin in [plugins::PY_CHAT, plugins::JS_CHAT] {
        let started = Instant::now();
        let out = agent_host(dir, &["-vv", "inspect", plugin], &[]);
        let took = started.elapsed();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{plugin}: {stderr}");
        assert!(!stderr.contains("compiling"), "{plugin}: {stderr}");
        assert!(took < Duration::from_secs(5), "{plugin}: {took:?}");
        assert!(
            stdout.ends_with("world: agent-plugin-http\nfits a world the host serves: yes\n"),
            "{stdout}"
        );
    }
    // A Rust plugin that sends no HTTP fits the plain world.
    let out = agent_host(dir, &["inspect", plugins::CHAT_MEMORY], &[]);
    assert!(text(&out.stdout).contains("world: agent-plugin\n"));
}

/// The fenced blocks of `lang` in a Markdown text.
fn blocks<'a>(markdown: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    markdown
        .split(open.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect()
}

/// A shell command line as `sh` splits it: `\`-newlines joined, single and double
/// quotes kept together (what docs/models.md uses, nothing more).
fn shell_words(line: &str) -> Vec<String> {
    let line = line.replace("\\\n", " ");
    let (mut words, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => (quote, started) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (_, c) => (word, started) = (word + &c.to_string(), true),
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Every config file in docs/models.md loads (its secret headers resolved from
/// the variables it names) and every `agent-host run` line's flags parse: run
/// with a plugin file that does not exist, the error is about that file.
#[test]
fn docs_models_configs_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/models.md")).unwrap();
    let keys = [
        ("OPENAI_API_KEY", "sk-openai-s3cret"),
        ("ANTHROPIC_API_KEY", "sk-ant-s3cret"),
        ("VLLM_API_KEY", "vllm-s3cret"),
        ("AGENT_HOST_TOKEN_A", "a-token-of-at-least-16-chars"),
    ];
    let env = |name: &str| {
        keys.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    let configs = blocks(&doc, "toml");
    assert_eq!(configs.len(), 4, "one per server");
    for text in &configs {
        let file = agent_host::ConfigFile::parse(&root.join("models.toml"), text, None, env)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        file.require_secrets().unwrap();
        let plugin = file.plugin("llm-chat").unwrap().config();
        let url = plugin.env.iter().find(|(n, _)| n == "MODEL_URL").unwrap();
        let origin = plugin.outbound.origins[0].as_str();
        assert!(url.1.starts_with(origin), "{} is not under {origin}", url.1);
        let headers = plugin.outbound.origins[0].secret_headers.len();
        assert_eq!(headers, text.matches("${env:").count());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lines = 0;
    for block in blocks(&doc, "sh") {
        for command in block.split("\n\n").flat_map(|c| c.split("\nexport ")) {
            let Some(at) = command.find("agent-host run ") else {
                continue;
            };
            let mut words = shell_words(&command[at..]);
            assert_eq!(words[..2], ["agent-host", "run"]);
            words[2] = dir.path().join("missing.wasm").display().to_string();
            let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
            let out = agent_host(dir.path(), &args, &keys);
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains("missing.wasm: No such file"),
                "{args:?}: {stderr}"
            );
            assert!(!stderr.contains("s3cret"), "{stderr}");
            lines += 1;
        }
    }
    assert_eq!(lines, 4, "one run line per server");
}
