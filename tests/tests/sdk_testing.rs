//! A plugin's unit tests run natively in each SDK, against the SDK's in-memory
//! store (`agent_sdk::testing`): the Rust ones are `cargo test -p agent-sdk`
//! (guest-sdk/tests/testing.rs) and `cargo test -p chat-memory`; these run the
//! Python and JavaScript doc plugins' tests with plain `python3` and `node`, no
//! component and no host (a conversation over two turns, conflicts, a crash that
//! writes nothing, values, expiry).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (tests/setup.sh installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn python_plugin_unit_tests_run_with_plain_python3() {
    let (ok, text) = output(
        Command::new("python3")
            .args([
                "-m",
                "unittest",
                "discover",
                "-v",
                "-s",
                "tests/plugins/py-doc",
            ])
            .env("PYTHONPATH", root().join("guest-sdk/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    );
    assert!(ok, "{text}");
    assert!(text.contains("Ran 4 tests"), "{text}");
    assert!(
        text.contains("test_a_conversation_over_two_turns_and_a_conflict") && text.contains("\nOK"),
        "{text}"
    );
}

#[test]
fn javascript_plugin_unit_tests_run_with_plain_node() {
    let (ok, text) =
        output(Command::new("node").args(["--test", "tests/plugins/js-doc/app.test.js"]));
    assert!(ok, "{text}");
    assert!(
        text.contains("# pass 4") && text.contains("# fail 0"),
        "{text}"
    );
    assert!(
        text.contains("ok 1 - a conversation over two turns and a conflict"),
        "{text}"
    );
}
