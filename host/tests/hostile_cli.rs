//! The adversarial suite through the `agent-host` binary: what a hostile plugin
//! prints, answers or describes reaches the log escaped and bounded, a crash is
//! reported by its cause, and `run` keeps compiled plugins in a cache.

use std::path::Path;
use std::process::{Command, Output};

use agent_host_tests::plugins;

/// Runs `agent-host ARGS` with a state file and cache in `dir`, logs at info.
fn agent_host(dir: &Path, args: &[&str]) -> Output {
    command(dir, args)
        .env("RUST_LOG", "info")
        .output()
        .expect("agent-host runs")
}

/// Runs `agent-host ARGS` with the default log level (errors only).
fn quiet(dir: &Path, args: &[&str]) -> Output {
    command(dir, args)
        .env_remove("RUST_LOG")
        .output()
        .expect("agent-host runs")
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-host"));
    cmd.args(args)
        .env_remove("REDIS_URL")
        .env_remove("AGENT_HOST_CACHE")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", dir)
        .env("AGENT_HOST_STATE", dir.join("state.redb"));
    cmd
}

fn run(dir: &Path, format: &str, input: &str) -> (String, String) {
    let out = agent_host(
        dir,
        &[
            "--log-format",
            format,
            "run",
            plugins::HOSTILE,
            "-s",
            "s",
            "-i",
            input,
        ],
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Lines of the host's human log look like `2026-...Z  LEVEL target: ...`; a
/// forged one would start a line with the plugin's fake timestamp.
fn assert_no_forged_line(stderr: &str) {
    assert!(
        !stderr.contains('\x1b'),
        "an escape sequence reached the log:\n{stderr}"
    );
    for line in stderr.lines() {
        assert!(
            !line.starts_with("2026-01-01T00:00:00"),
            "a plugin forged a log line: {line:?}\n{stderr}"
        );
        assert!(!line.starts_with("stderr line two"), "{line:?}");
    }
}

#[test]
fn a_plugin_cannot_forge_log_lines_in_either_format() {
    let dir = tempfile::tempdir().unwrap();
    let (_, human) = run(dir.path(), "human", "forge");
    assert_no_forged_line(&human);
    assert!(
        human.contains("boom\\n2026-01-01"),
        "the error text is kept, escaped:\n{human}"
    );
    assert!(
        human.contains("hostile\\nERROR agent_host: forged\\u{1b}[2J"),
        "{human}"
    );

    let (_, json) = run(dir.path(), "json", "forge");
    assert!(!json.contains('\x1b'), "{json}");
    for line in json.lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
        assert!(event.is_object());
    }
    assert!(json.contains("boom\\\\n2026-01-01"), "{json}");
}

#[test]
fn a_plugin_cannot_flood_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // 100,000 refused memory growths and 2,000 refused appends in one turn.
    for (input, answer, refusals) in [
        ("grow 100000", "100000 refused", "refused 100000 times"),
        ("refused-appends 2000", "2000 refused", "refused 2000 times"),
    ] {
        let (stdout, stderr) = run(dir.path(), "human", input);
        assert_eq!(stdout.trim(), answer, "{stderr}");
        assert!(stderr.contains(refusals), "no summary line:\n{stderr}");
        assert!(
            stderr.lines().count() < 20,
            "{} lines:\n{stderr}",
            stderr.lines().count()
        );
    }
    // A 1 MB describe version and a 64 KiB error text: every log line stays short
    // (the command's own last line, `error: ...`, is the answer and is whole).
    let (_, stderr) = run(dir.path(), "human", "error 65536");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.len() > 65536,
        "{last:.100}"
    );
    let longest = stderr
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");
    assert!(stderr.contains("more bytes"), "{stderr}");
}

#[test]
fn a_crash_is_reported_by_its_cause_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = quiet(
        dir.path(),
        &["run", plugins::WRECK, "-s", "s", "-i", "trap"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.contains("wreck: trapping after writing"), "{error}");
    assert!(!error.contains("RUST_BACKTRACE"), "{error}");
    // What happened, and where the whole stderr is (`-v` shows it).
    assert!(error.contains("crashed: a Rust panic;"), "{error}");
    assert!(error.contains("agent-host -v"), "{error}");
    let verbose = quiet(
        dir.path(),
        &["-v", "run", plugins::WRECK, "-s", "s", "-i", "trap"],
    );
    let logged = String::from_utf8_lossy(&verbose.stderr);
    assert!(logged.contains("panicked at"), "{logged}");

    // A file that is not a component: one line, for both commands.
    for command in ["inspect", "run"] {
        let args = match command {
            "run" => &["run", "Cargo.toml", "-s", "s", "-i", "x"][..],
            _ => &["inspect", "Cargo.toml"][..],
        };
        let out = quiet(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(stderr.trim().lines().count(), 1, "{command}:\n{stderr}");
        assert!(stderr.contains("not a WebAssembly file"), "{stderr}");
    }
}

#[test]
fn run_keeps_compiled_plugins_in_the_users_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join(".cache").join("agent-host");
    let (_, first) = run(dir.path(), "human", "answer 2");
    assert!(first.contains("from_cache=false"), "{first}");
    assert!(
        std::fs::read_dir(&cache).map_or(0, |d| d.count()) > 0,
        "nothing in {}",
        cache.display()
    );
    let (stdout, second) = run(dir.path(), "human", "answer 2");
    assert_eq!(stdout.trim(), "aa");
    assert!(second.contains("from_cache=true"), "{second}");

    // --no-cache compiles and writes nothing.
    let other = tempfile::tempdir().unwrap();
    let out = agent_host(
        other.path(),
        &[
            "run",
            plugins::HOSTILE,
            "-s",
            "s",
            "-i",
            "answer 1",
            "--no-cache",
        ],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("from_cache=false"));
    assert!(!other.path().join(".cache").exists());
}

/// Runs `agent-host ARGS` with its stdout a pipe that is closed after its first
/// line; the first line, and the command's exit status and stderr.
fn first_line_then_close(dir: &Path, args: &[&str]) -> (String, std::process::ExitStatus, String) {
    use std::io::{BufRead, BufReader, Read};
    let mut child = quiet_command(dir, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agent-host runs");
    let mut first = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut first).unwrap();
    // The reader goes away while the command still has much to print.
    drop(out);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (first, child.wait().unwrap(), stderr)
}

fn quiet_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = command(dir, args);
    cmd.env_remove("RUST_LOG");
    cmd
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent-host.toml");
    let text = format!(
        "[store]\npath = \"state.redb\"\n\n[[plugin]]\nid = \"p\"\nwasm = \"{}\"\nprefix = \"t\"\n",
        plugins::PROBE
    );
    std::fs::write(&config, text).unwrap();
    // 1,000 sessions of 150-byte ids and one of 600 kB: each command below has
    // more to print than a pipe holds, so it is still printing when the pipe
    // closes.
    let mut ops: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            let session = format!("{i:04}{}", "s".repeat(146));
            serde_json::json!({"op": "save", "session": session, "value": "v"})
        })
        .collect();
    ops.push(serde_json::json!({"op": "save-big", "session": "big", "size": 600_000}));
    let state = dir.path().join("state.redb");
    let mut run = quiet_command(dir.path(), &["run", plugins::PROBE, "-s", "big"])
        .args(["--prefix", "t", "--no-cache", "--state-file"])
        .arg(&state)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::Value::Array(ops).to_string();
    std::io::Write::write_all(&mut run.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let ran = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(!stdout.contains("err"), "{stdout}");

    let config = config.to_str().unwrap();
    let commands: [&[&str]; 2] = [
        &["sessions", "--config", config, "--plugin", "p", "list"],
        &[
            "sessions", "--config", config, "--plugin", "p", "show", "big",
        ],
    ];
    for args in commands {
        let (first, status, stderr) = first_line_then_close(dir.path(), args);
        assert!(!first.is_empty(), "{args:?}: nothing printed; {stderr}");
        assert!(status.success(), "{args:?}: {status}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}
