//! `agent-host check --config FILE` and `serve --check`: a good config passes
//! (exit 0); a bad one gets one line per problem, each naming its place in the
//! file, and exit 1, without starting a server or showing a secret.

mod support;

use std::process::{Command, Output};

use agent_host_tests::{RedisServer, plugins};

fn check(args: &[&str], config: &std::path::Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agent-host"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("REDIS_URL")
        .envs(env.iter().copied())
        .output()
        .expect("agent-host runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_good_config_passes_on_redis_and_on_the_embedded_store() {
    let redis = RedisServer::start();
    for store in [
        "path = \"state.redb\"".to_string(),
        format!("url = \"{}\"", redis.url()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent-host.toml");
        let text_of = format!(
            "[store]\n{store}\n\n[[plugin]]\nid = \"counter\"\nwasm = \"{}\"\nprefix = \"a\"\n\n\
             [[token]]\ntenant = \"a\"\nsecret_env = \"CHECK_TOKEN\"\nplugins = [\"counter\"]\n",
            plugins::COUNTER
        );
        std::fs::write(&config, text_of).unwrap();
        let env = [("CHECK_TOKEN", "a-token-of-tenant-a-0123")];
        for args in [&["check"][..], &["serve", "--check"][..]] {
            let out = check(args, &config, &env);
            let stdout = text(&out.stdout);
            assert!(
                out.status.success(),
                "{args:?}: {stdout}{}",
                text(&out.stderr)
            );
            assert!(stdout.contains("ok (1 plugins load"), "{stdout}");
        }
    }
}

#[test]
fn a_bad_config_gets_one_line_per_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent-host.toml");
    std::fs::write(dir.path().join("garbage.wasm"), b"\0asm not a component").unwrap();
    // A core module: valid wasm, but no component.
    std::fs::write(
        dir.path().join("core.wasm"),
        [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    )
    .unwrap();
    // Port 1 on loopback: nothing listens there.
    let text_of = format!(
        "[store]\nurl = \"redis://:hunter2-password@127.0.0.1:1\"\n\n\
         [[plugin]]\nid = \"good\"\nwasm = \"{}\"\nprefix = \"a\"\n\n\
         [[plugin]]\nid = \"garbage\"\nwasm = \"garbage.wasm\"\nprefix = \"a\"\n\n\
         [[plugin]]\nid = \"core\"\nwasm = \"core.wasm\"\nprefix = \"a\"\n\n\
         [[token]]\ntenant = \"a\"\nsecret_env = \"CHECK_UNSET_TOKEN\"\nplugins = [\"*\"]\n",
        plugins::COUNTER
    );
    std::fs::write(&config, text_of).unwrap();
    let out = check(&["check"], &config, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let path = config.display().to_string();
    let line_with = |what: &str| {
        lines
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?} in:\n{stdout}"))
            .to_string()
    };
    assert!(line_with("CHECK_UNSET_TOKEN").starts_with(&format!("{path}:20:")));
    assert!(line_with("plugin \"garbage\"").starts_with(&format!("{path}:11:")));
    assert!(line_with("plugin \"core\"").starts_with(&format!("{path}:16:")));
    assert!(line_with("[store]").contains("does not answer"));
    // Three plugins with different components on one prefix: noted, no problem.
    let (notes, problems): (Vec<&&str>, Vec<&&str>) =
        lines.iter().partition(|l| l.contains(": note: "));
    assert_eq!(notes.len(), 3, "{stdout}");
    assert!(notes[0].contains("share prefix \"a\""), "{stdout}");
    assert_eq!(
        problems.len(),
        4,
        "the good plugin is no problem:\n{stdout}"
    );
    assert!(stderr.contains("4 problems"), "{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("hunter2"),
        "the password shown"
    );
}

#[test]
fn a_file_that_does_not_parse_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent-host.toml");
    std::fs::write(&config, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let out = check(&["check"], &config, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", config.display())),
        "{stderr}"
    );
}

/// What `serve` refuses, `check` finds (an `https` trace endpoint); and the store
/// file of the running server is no problem: check, then reload.
#[test]
fn check_agrees_with_serve_and_with_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent-host.toml");
    let base = format!(
        "[store]\npath = \"state.redb\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[plugin]]\nid = \"counter\"\nwasm = \"{}\"\nprefix = \"a\"\n\n\
         [[token]]\ntenant = \"a\"\nsecret = \"{}\"\nplugins = [\"counter\"]\n",
        plugins::COUNTER,
        support::TOKEN_A
    );
    let https = format!("{base}\n[telemetry]\notlp_endpoint = \"https://collector.example\"\n");
    std::fs::write(&config, https).unwrap();
    let out = check(&["check"], &config, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[telemetry]"), "{stdout}");

    std::fs::write(&config, &base).unwrap();
    let server = support::Server::spawn(dir, &config, &[], &[]);
    let out = check(&["check"], &config, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("not checked"), "{stdout}");
    assert!(stdout.contains("in use by a running server"), "{stdout}");
    drop(server);
}
