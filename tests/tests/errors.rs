//! How a plugin fails, in Rust, Python and JavaScript
//! (`cargo test -p agent-host-tests --test errors`):
//! - an error nothing handles (a Rust panic, an exception nothing catches, a
//!   rejected Promise) and an answer that is not a string crash the turn: nothing
//!   is written, and the error names what happened and ends with the plugin's
//!   message (`TypeError: x`), in one line, with where its whole stderr is;
//! - the SDKs' own errors (`AgentError`) answer the turn, whose writes commit;
//! - a syntax error (in Rust also a wrong type) fails the build with the author's
//!   FILE:LINE, without a backtrace;
//! - the WIT's doc comments make Python bindings without warnings.

use std::path::{Path, PathBuf};
use std::process::Command;

use agent_host::{CrashCause, Host, PluginConfig, TurnError};
use agent_host_tests::{Backend, load, plugins};

/// tests/plugins/js-errors and tests/plugins/py-errors: append the input, then
/// fail the way it says.
const JS_ERRORS: &str = env!("PLUGIN_JS_ERRORS");
const PY_ERRORS: &str = env!("PLUGIN_PY_ERRORS");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A host with `wasm` loaded as plugin `id`.
async fn host_with(backend: &Backend, id: &str, wasm: &str) -> Host {
    let host = backend.cached_host();
    load(&host, PluginConfig::new(id, "tenant-a"), wasm).await;
    host
}

/// Runs a turn of session `s` that must crash; checks that it wrote nothing and
/// that its message is one line with the hint; returns the cause and the message.
async fn crash(host: &Host, plugin: &str, input: &str) -> (CrashCause, String) {
    let before = host.inspect(plugin, "s").await.unwrap();
    let e = match host.run_turn(plugin, "s", input).await {
        Err(e) => e,
        Ok(answer) => panic!("{input}: answered {answer:?} instead of crashing"),
    };
    let TurnError::Trap { cause, .. } = &e else {
        panic!("{input}: expected a crash, got {e:?}");
    };
    let text = e.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(
        text.contains("; agent-host -v (or the server's log) shows its stderr"),
        "{text}"
    );
    let after = host.inspect(plugin, "s").await.unwrap();
    assert_eq!(
        (after.exists, after.history_len),
        (before.exists, before.history_len),
        "{input}: the crashed turn wrote"
    );
    (*cause, text)
}

/// Asserts that `text` ends with the plugin's stderr line `line`.
fn ends_with(text: &str, line: &str) {
    assert!(
        text.ends_with(&format!("(stderr: {line})")),
        "{text}\n  should end with (stderr: {line})"
    );
}

/// A plugin error of `plugin` with `message`, whose writes (its appended input) commit.
async fn answers_its_error(host: &Host, plugin: &str, input: &str, message: &str) {
    let before = host.inspect(plugin, "s").await.unwrap().history_len;
    match host.run_turn(plugin, "s", input).await {
        Err(TurnError::Plugin { message: m, .. }) => assert_eq!(m, message),
        other => panic!("{input}: expected a plugin error, got {other:?}"),
    }
    let after = host.inspect(plugin, "s").await.unwrap().history_len;
    assert_eq!(
        after,
        before + 1,
        "{input}: the plugin error's writes commit"
    );
    assert_eq!(host.run_turn(plugin, "s", "ok").await.unwrap(), "ok");
}

/// Runs a build script from the repository's root, into a temp dir; it must fail
/// with status 1 and write nothing. Its stderr.
fn failed_build(script: &str, args: &[&str]) -> String {
    let out = tempfile::tempdir().expect("temp dir");
    let wasm = out.path().join("out.wasm");
    let ran = Command::new(root().join(script))
        .current_dir(root())
        .args(args)
        .arg(&wasm)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stderr = String::from_utf8_lossy(&ran.stderr).into_owned();
    assert_eq!(ran.status.code(), Some(1), "{script} {args:?}:\n{stderr}");
    assert!(!wasm.exists(), "{script} {args:?} wrote {}", wasm.display());
    stderr
}

/// `stderr` as its one line: no more lines, no backtrace, no stack.
fn one_line(stderr: &str) -> &str {
    let line = stderr.trim_end();
    assert!(!line.contains('\n'), "more than one line:\n{stderr}");
    assert!(!line.to_lowercase().contains("backtrace"), "{line}");
    line
}

mod rust {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_named_by_its_message() {
        let backend = Backend::embedded();
        let host = host_with(&backend, "wreck", plugins::WRECK).await;
        let (cause, text) = crash(&host, "wreck", "trap").await;
        assert_eq!(cause, CrashCause::Panic, "{text}");
        assert!(text.contains("crashed: a Rust panic;"), "{text}");
        ends_with(&text, "wreck: trapping after writing");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abort_and_a_failed_allocation_are_named() {
        let backend = Backend::embedded();
        let host = host_with(&backend, "wreck", plugins::WRECK).await;
        let (cause, text) = crash(&host, "wreck", "abort").await;
        assert_eq!(cause, CrashCause::Abort, "{text}");
        assert!(
            text.contains("crashed: an abort (wasm trap: wasm `unreachable`"),
            "{text}"
        );
        let (cause, text) = crash(&host, "wreck", "alloc-error").await;
        assert_eq!(cause, CrashCause::OutOfMemory, "{text}");
        assert!(text.contains("crashed: out of memory;"), "{text}");
        ends_with(&text, "memory allocation of 1048576 bytes failed");
    }

    /// A Rust plugin's build is cargo's: with `--message-format short` each error
    /// is one line that starts with the author's FILE:LINE:COLUMN.
    #[test]
    fn a_syntax_error_and_a_wrong_type_name_the_file_and_line() {
        for (name, line, error) in [
            ("rs-syntax", 10, "error: mismatched closing delimiter"),
            ("rs-wrong-type", 10, "error[E0308]: mismatched types"),
        ] {
            let stderr = cargo_check(name);
            let source = root().join("tests/plugins").join(name).join("lib.rs");
            let first = stderr.lines().next().unwrap_or_default();
            let at = format!("{}:{line}:", source.display());
            assert!(first.starts_with(&at), "{name}: {first}\n  not at {at}");
            assert!(first.contains(error), "{name}: {first}");
            assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
        }
    }

    /// `cargo check`s tests/plugins/`name`/lib.rs as the lib of a plugin crate
    /// (agent-sdk from the tree, the workspace's lock, offline), which must fail;
    /// its stderr. It builds in target/rust-build-errors, so agent-sdk's
    /// dependencies are checked once.
    fn cargo_check(name: &str) -> String {
        let dir = root().join("target/rust-build-errors").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\npath = {:?}\n\n\
             [dependencies]\nagent-sdk = {{ path = {:?} }}\n\n[workspace]\n",
            root().join("tests/plugins").join(name).join("lib.rs"),
            root().join("guest-sdk"),
        );
        std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
        std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ran = Command::new(&cargo)
            .current_dir(&dir)
            .args(["check", "--quiet", "--offline", "--target", "wasm32-wasip2"])
            .args(["--message-format", "short", "--target-dir"])
            .arg(root().join("target/rust-build-errors/target"))
            // Flags meant for the tests' own build must not reach this one.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
        let stderr = String::from_utf8_lossy(&ran.stderr).into_owned();
        assert!(!ran.status.success(), "{name} built");
        assert!(
            !stderr.contains("can't find crate") && !stderr.contains("target may not be installed"),
            "{stderr}\n(rustup target add wasm32-wasip2, or tests/setup.sh)"
        );
        stderr
    }
}

mod javascript {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_uncaught_exception_is_named_by_its_message() {
        let backend = Backend::embedded();
        let host = host_with(&backend, "js", JS_ERRORS).await;
        for (input, said) in [
            ("throw-error", "TypeError: x"),
            ("throw-string", "a string was thrown"),
            ("throw-object", r#"{"code":7} (an object) was thrown"#),
            ("reject", "RangeError: rejected"),
        ] {
            let (cause, text) = crash(&host, "js", input).await;
            assert_eq!(cause, CrashCause::UncaughtException, "{text}");
            assert!(text.contains("crashed: an uncaught exception;"), "{text}");
            ends_with(&text, said);
        }
        answers_its_error(&host, "js", "agent-error", "refused on purpose").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_that_is_not_a_string_is_named() {
        let backend = Backend::embedded();
        let host = host_with(&backend, "js", JS_ERRORS).await;
        for (input, returned) in [
            ("return-number", "42 (a number)"),
            ("return-object", r#"{"answer":42} (an object)"#),
            ("return-undefined", "undefined"),
        ] {
            let (cause, text) = crash(&host, "js", input).await;
            assert_eq!(cause, CrashCause::UncaughtException, "{text}");
            let hint = if returned == "undefined" {
                " (is a `return` missing?)"
            } else {
                ""
            };
            ends_with(
                &text,
                &format!("TypeError: the handler returned {returned}, not a string{hint}"),
            );
        }
    }

    #[test]
    fn a_syntax_error_fails_the_build_with_file_and_line() {
        let stderr = failed_build("guest-sdk/js/build.sh", &["tests/plugins/js-syntax/app.js"]);
        let line = one_line(&stderr);
        assert!(
            line.starts_with("tests/plugins/js-syntax/app.js:7:")
                && line.contains(": SyntaxError: "),
            "{line}"
        );
    }
}

mod python {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_uncaught_exception_is_named_by_its_message() {
        let backend = Backend::embedded();
        let host = host_with(&backend, "py", PY_ERRORS).await;
        let (cause, text) = crash(&host, "py", "raise-error").await;
        assert_eq!(cause, CrashCause::UncaughtException, "{text}");
        assert!(text.contains("crashed: an uncaught exception;"), "{text}");
        ends_with(&text, "TypeError: x");
        answers_its_error(&host, "py", "agent-error", "refused on purpose").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_that_is_not_a_str_is_named() {
        let backend = Backend::embedded();
        let host = host_with(&backend, "py", PY_ERRORS).await;
        for (input, said) in [
            ("return-number", "the handler returned 42 (int), not str"),
            (
                "return-dict",
                "the handler returned {'answer': 42} (dict), not str",
            ),
            (
                "return-none",
                "the handler returned None, not str (is a return missing?)",
            ),
        ] {
            let (cause, text) = crash(&host, "py", input).await;
            assert_eq!(cause, CrashCause::UncaughtException, "{text}");
            ends_with(&text, &format!("TypeError: {said}"));
        }
    }

    #[test]
    fn a_syntax_error_fails_the_build_with_file_and_line() {
        let stderr = failed_build(
            "guest-sdk/python/build.sh",
            &["tests/plugins/py-syntax", "app"],
        );
        let line = one_line(&stderr);
        assert!(
            line.starts_with("tests/plugins/py-syntax/app.py:13: SyntaxError: "),
            "{line}"
        );
        assert!(!stderr.contains("SyntaxWarning"), "{stderr}");
    }

    /// componentize-py copies the WIT's doc comments into Python docstrings, so a
    /// backslash there is an invalid escape sequence: a `SyntaxWarning` printed
    /// while a plugin builds. The bindings compile with warnings as errors.
    #[test]
    fn the_wit_makes_bindings_without_warnings() {
        let venv = root().join("target/python-venv/bin");
        let out = tempfile::tempdir().expect("temp dir");
        let made = Command::new(venv.join("componentize-py"))
            .arg("-d")
            .arg(root().join("wit"))
            .args(["-w", "agent-plugin-http", "bindings"])
            .arg(out.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run componentize-py: {e} (tests/setup.sh installs it)")
            });
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let check = "import pathlib, sys\n\
            bad = []\n\
            for p in sorted(pathlib.Path(sys.argv[1]).rglob('*.py')):\n    \
                try:\n        compile(p.read_text(), str(p), 'exec')\n    \
                except SyntaxError as e:\n        bad.append(f'{p}:{e.lineno}: {e.msg}')\n\
            print('\\n'.join(bad))\n\
            sys.exit(1 if bad else 0)\n";
        let checked = Command::new(venv.join("python"))
            .args(["-W", "error", "-c", check])
            .arg(out.path().join("wit_world"))
            .output()
            .expect("the venv's python");
        assert!(
            checked.status.success(),
            "the generated bindings warn:\n{}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
