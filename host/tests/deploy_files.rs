//! The deploy files in `examples/deploy` and the shell completions: the systemd
//! unit passes `systemd-analyze verify` with the built binary in its
//! `ExecStart`, the Dockerfile has the lines it promises (it cannot be built here:
//! no Docker engine), the sample config loads, and `agent-host completions`
//! prints a script for each shell.

use std::path::{Path, PathBuf};
use std::process::Command;

use agent_host::ConfigFile;
use agent_host_tests::plugins;

const BINARY: &str = env!("CARGO_BIN_EXE_agent-host");

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("examples/deploy")
}

fn read(name: &str) -> String {
    let path = deploy_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `Key=` lines of a unit (all of them, in order).
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_with_the_built_binary() {
    let unit = read("agent-host.service");
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(
        exec,
        ["/usr/local/bin/agent-host serve --config /etc/agent-host/agent-host.toml"]
    );
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "agent-host"),
        ("CacheDirectory", "agent-host"),
        ("SystemCallArchitectures", "native"),
        ("KillSignal", "SIGTERM"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("LimitNOFILE", "65536"),
        // getifaddrs, before each outbound request, needs AF_NETLINK.
        (
            "RestrictAddressFamilies",
            "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        ),
    ] {
        assert_eq!(unit_values(&unit, key), [value], "{key}");
    }
    // wasmtime's JIT maps code executable after writing it.
    assert!(unit_values(&unit, "MemoryDenyWriteExecute").is_empty());
    // The stop timeout outlasts the sample config's shutdown_grace (30 s).
    let stop = unit_values(&unit, "TimeoutStopSec");
    let stop = humantime::parse_duration(stop[0]).unwrap();
    assert!(stop > std::time::Duration::from_secs(30), "{stop:?}");

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("agent-host.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/agent-host", BINARY)).unwrap();
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run systemd-analyze ({e}); it checks the unit: `apt-get install systemd` (tests/setup.sh does)"
        ),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // A value it cannot parse is a warning, not a failure: none may name the unit.
    assert!(
        !stderr.contains("agent-host.service"),
        "systemd-analyze verify: {stderr}"
    );

    // And it does fail a unit whose binary is missing (the check is real).
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/agent-host", "/nonexistent/agent-host"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_a_user_in_another() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let starting = |word: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(word)?.strip_prefix(' '))
            .collect()
    };
    // The builder's Rust is the one rust-toolchain.toml pins.
    let toolchain =
        std::fs::read_to_string(deploy_dir().join("../../rust-toolchain.toml")).unwrap();
    let toolchain: toml::Table = toolchain.parse().unwrap();
    let channel = toolchain["toolchain"]["channel"].as_str().unwrap();
    let from = starting("FROM");
    assert_eq!(from.len(), 2, "{from:?}");
    assert_eq!(from[0], format!("rust:{channel}-bookworm AS build"));
    assert_eq!(from[1], "debian:bookworm-slim");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cargo build --release --locked -p agent-host --bin agent-host")),
        "{dockerfile}"
    );
    assert!(
        starting("COPY")
            .contains(&"--from=build /src/target/release/agent-host /usr/local/bin/agent-host"),
        "{dockerfile}"
    );
    let user = starting("USER");
    assert_eq!(user.len(), 1, "{user:?}");
    assert!(
        !user[0].starts_with("root") && !user[0].starts_with('0'),
        "{user:?}"
    );
    assert!(starting("VOLUME")[0].contains("/var/cache/agent-host"));
    assert_eq!(starting("EXPOSE"), ["8080"]);
    assert_eq!(starting("ENTRYPOINT"), [r#"["agent-host"]"#]);
    assert_eq!(
        starting("CMD"),
        [r#"["serve", "--config", "/etc/agent-host/agent-host.toml"]"#]
    );
    // What the image exposes and keeps is what its config says.
    let config = read("agent-host.toml");
    assert!(config.contains("listen = \"0.0.0.0:8080\""), "{config}");
    assert!(
        config.contains("cache_dir = \"/var/cache/agent-host\""),
        "{config}"
    );
    assert!(
        read("Dockerfile.dockerignore")
            .lines()
            .any(|l| l == "target")
    );
}

#[test]
fn the_sample_deploy_config_loads() {
    // The plugin file it names is the operator's; the chat example stands in.
    let config = read("agent-host.toml");
    let wasm = "/etc/agent-host/plugins/chat_memory.wasm";
    assert!(config.contains(wasm), "{config}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-host.toml");
    std::fs::write(&path, config.replace(wasm, plugins::CHAT_MEMORY)).unwrap();
    let file = ConfigFile::load(&path).unwrap();
    assert!(file.plugin("chat").is_some());
}

#[test]
fn completions_name_the_commands_in_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BINARY)
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{shell}");
        assert!(
            script.contains("serve") && script.contains("sessions"),
            "{shell}: {script}"
        );
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("agent-host.bash");
            std::fs::write(&path, &script).unwrap();
            // bash is on every machine these tests run on; `bash -n` parses only.
            let status = Command::new("bash").arg("-n").arg(&path).status();
            let status = status.expect("bash runs");
            assert!(status.success(), "bash -n rejects the script");
            // And it completes: a subcommand's flags after `agent-host serve --`.
            for (words, expected) in [
                ("agent-host se", "sessions"),
                ("agent-host serve --", "--config"),
            ] {
                let split: Vec<&str> = words.split(' ').collect();
                let (cur, prev) = (split[split.len() - 1], split[split.len() - 2]);
                let line = format!(
                    "source {}; COMP_WORDS=({words}); COMP_CWORD={}; \
                     _agent__host agent-host {cur} {prev}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                    path.display(),
                    split.len() - 1,
                );
                let out = Command::new("bash").args(["-c", &line]).output().unwrap();
                let offered = String::from_utf8_lossy(&out.stdout);
                assert!(
                    offered.lines().any(|w| w == expected),
                    "{words:?}: no {expected} in {offered:?} ({})",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let out = Command::new(BINARY)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
