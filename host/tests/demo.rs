//! `examples/demo.sh`, a newcomer's first command: it installs and builds only what
//! it runs (the wasm32-wasip2 target, agent-host, the chat-memory plugin), then
//! its second turn remembers the first.

use std::path::Path;
use std::process::Command;

use agent_host_tests::plugins;

/// Runs the real script under `bash -x` with `cargo` and `rustup` replaced by
/// stubs that log their arguments (the binary and the plugin are the ones the
/// tests built), so the trace shows every command it runs itself.
#[test]
fn the_demo_installs_only_what_it_runs_and_remembers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let stubs = dir.path().join("bin");
    let calls = dir.path().join("calls.log");
    std::fs::create_dir(&stubs).unwrap();
    for (name, extra) in [
        ("cargo", ""),
        // The target is there: `rustup target list --installed` lists it.
        (
            "rustup",
            "case \"$*\" in *--installed*) echo wasm32-wasip2;; esac\n",
        ),
    ] {
        let stub = stubs.join(name);
        let body = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{extra}exit 0\n",
            calls.display()
        );
        std::fs::write(&stub, body).unwrap();
        let mut perms = std::fs::metadata(&stub).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&stub, perms).unwrap();
    }
    // The plugin the demo builds is where the tests build it.
    let expected = root.join("target/wasm-plugins/wasm32-wasip2/release/chat_memory.wasm");
    assert_eq!(
        std::fs::canonicalize(&expected).unwrap(),
        std::fs::canonicalize(plugins::CHAT_MEMORY).unwrap()
    );
    let target = dir.path().join("target");
    std::fs::create_dir_all(target.join("debug")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_agent-host"),
        target.join("debug/agent-host"),
    )
    .unwrap();
    let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .arg("-x")
        .arg(root.join("examples/demo.sh"))
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &target)
        .env("AGENT_HOST_STATE", dir.path().join("demo.redb"))
        .env("AGENT_HOST_CACHE", dir.path().join("cache"))
        .env_remove("REDIS_URL")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, trace) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{trace}");
    let commands: Vec<&str> = trace.lines().filter(|l| l.starts_with('+')).collect();
    for installer in [
        "setup.sh",
        "install.sh",
        "apt-get",
        "pip ",
        "npm ",
        "redis-server",
        "nginx",
    ] {
        assert!(
            !commands.iter().any(|c| c.contains(installer)),
            "the demo ran {installer}:\n{trace}"
        );
    }
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        calls,
        "rustup target list --installed\n\
         cargo build -q -p agent-host\n\
         cargo build -q --release --target wasm32-wasip2 --target-dir target/wasm-plugins -p chat-memory\n"
    );
    let turns: Vec<&str> = stdout.lines().filter(|l| l.starts_with("Turn ")).collect();
    assert_eq!(turns.len(), 2, "{stdout}");
    assert!(turns[0].starts_with("Turn 1."), "{stdout}");
    assert!(
        turns[1].starts_with("Turn 2.")
            && turns[1].contains(
                "Before that you said: \"Hello! I want to learn about sourdough baking.\""
            ),
        "{stdout}"
    );
}
