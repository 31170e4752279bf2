//! A plugin's unit tests run natively in each SDK, against the SDK's in-memory
//! store (`agent_sdk::testing`): the Rust ones are `cargo test -p agent-sdk`
//! (guest-sdk/tests/testing.rs) and `cargo test -p chat-memory`; these run the
//! Python and JavaScript test plugins' tests with plain `python3` and `node`, no
//! component and no host: the doc plugins' (a conversation over two turns,
//! conflicts, a crash that writes nothing, values, expiry) and the remind
//! plugins' (schedules committed with their turn, an error's kept and a crash's
//! dropped, due ones run and a failed one retried).

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

/// `python3 -m unittest` on a test plugin's folder, with the SDK on the path.
fn python_unit_tests(dir: &str) -> (bool, String) {
    output(
        Command::new("python3")
            .args(["-m", "unittest", "discover", "-v", "-s", dir])
            .env("PYTHONPATH", root().join("guest-sdk/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )
}

/// `node --test` on a test plugin's test file.
fn node_unit_tests(file: &str) -> (bool, String) {
    output(Command::new("node").args(["--test", file]))
}

#[test]
fn python_plugin_unit_tests_run_with_plain_python3() {
    let (ok, text) = python_unit_tests("tests/plugins/py-doc");
    assert!(ok, "{text}");
    assert!(text.contains("Ran 4 tests"), "{text}");
    assert!(
        text.contains("test_a_conversation_over_two_turns_and_a_conflict") && text.contains("\nOK"),
        "{text}"
    );
}

#[test]
fn javascript_plugin_unit_tests_run_with_plain_node() {
    let (ok, text) = node_unit_tests("tests/plugins/js-doc/app.test.js");
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

#[test]
fn python_schedules_unit_tests_run_with_plain_python3() {
    let (ok, text) = python_unit_tests("tests/plugins/py-remind");
    assert!(ok, "{text}");
    assert!(text.contains("Ran 3 tests"), "{text}");
    assert!(
        text.contains("test_a_failed_turn_keeps_its_schedules_and_a_crash_drops_them")
            && text.contains("\nOK"),
        "{text}"
    );
}

#[test]
fn javascript_schedules_unit_tests_run_with_plain_node() {
    let (ok, text) = node_unit_tests("tests/plugins/js-remind/app.test.js");
    assert!(ok, "{text}");
    assert!(
        text.contains("# pass 3") && text.contains("# fail 0"),
        "{text}"
    );
    assert!(
        text.contains("ok 2 - a failed turn keeps its schedules and a crash drops them"),
        "{text}"
    );
}

/// The tool agents' unit tests (and `agent_sdk.llm`'s / `agent-sdk/llm`'s tool
/// loop) against the Python model stand-in, which they start.
#[test]
fn python_tools_unit_tests_run_with_plain_python3() {
    let (ok, text) = python_unit_tests("tests/plugins/py-tools-agent");
    assert!(ok, "{text}");
    assert!(
        text.contains("Ran 6 tests") && text.contains("\nOK"),
        "{text}"
    );
}

#[test]
fn javascript_tools_unit_tests_run_with_plain_node() {
    let (ok, text) = node_unit_tests("tests/plugins/js-tools-agent/app.test.js");
    assert!(ok, "{text}");
    assert!(
        text.contains("# pass 4") && text.contains("# fail 0"),
        "{text}"
    );
}
