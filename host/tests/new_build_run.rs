//! A new plugin author's path, in each language, from an empty directory outside
//! the repository: `agent-host new` with the SDK from its package (the `.crate`
//! of `cargo package`, a wheel of `pip wheel`, an `npm pack` tarball, made here
//! from the sources), `agent-host build`, `agent-host run`; then a second module
//! of the author's own (and an npm package in JavaScript), a warm build and a
//! second turn that uses it; then a syntax error there, which the build names in
//! one line.
//!
//! It needs cargo with the wasm32-wasip2 target, python3 with venv, node 20+ and
//! npm, and the registries (crates.io, PyPI, npm) on the first run. Everything it
//! installs or caches goes under `target/new-build-run/` (the toolchains through
//! `AGENT_HOST_TOOLCHAINS`, the Rust plugins' dependencies through a shared
//! `CARGO_TARGET_DIR`), so a second run is warm: here (2 cores, the three in
//! parallel) 207 s cold, 89 s warm, most of it `run` compiling the Python and
//! JavaScript components in a debug host. Times are printed (`--nocapture`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Shared by runs of this test: toolchains, caches, the packages made here.
fn shared() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("new-build-run");
    std::fs::create_dir_all(&dir).expect("creating target/new-build-run");
    dir
}

/// Runs `program` in `dir`; its output, or a panic saying what failed and how to
/// get a missing tool.
fn run(dir: &Path, program: &str, args: &[&str], needs: &str) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        // The same wheel for the same sources (hatchling dates its files by it), so
        // the next run finds the toolchain of this one.
        .env("SOURCE_DATE_EPOCH", "315532800")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} ({needs})"))
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The three SDK packages, made once per test process.
struct Packages {
    krate: PathBuf,
    wheel: PathBuf,
    tarball: PathBuf,
}

fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let out = shared().join("packages");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).expect("creating the packages dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = shared().join("package-target");
        let target = target.to_str().expect("a UTF-8 path");
        ok(
            run(
                &root(),
                &cargo,
                &["package", "-p", "agent-sdk", "--allow-dirty", "--no-verify"]
                    .into_iter()
                    .chain(["--target-dir", target])
                    .collect::<Vec<_>>(),
                "cargo",
            ),
            "cargo package -p agent-sdk",
        );
        let name = format!("agent-sdk-{}.crate", env!("CARGO_PKG_VERSION"));
        let krate = out.join(&name);
        std::fs::copy(Path::new(target).join("package").join(&name), &krate).expect("the .crate");
        let dest = out.to_str().expect("a UTF-8 path");
        ok(
            run(
                &root(),
                "python3",
                &[
                    "-m",
                    "pip",
                    "wheel",
                    "--quiet",
                    "--no-deps",
                    "-w",
                    dest,
                    "guest-sdk/python",
                ],
                "python3 with pip is needed",
            ),
            "pip wheel guest-sdk/python",
        );
        ok(
            run(
                &root().join("guest-sdk/js"),
                "npm",
                &["pack", "--silent", "--pack-destination", dest],
                "node and npm are needed",
            ),
            "npm pack guest-sdk/js",
        );
        let find = |ext: &str| {
            std::fs::read_dir(&out)
                .expect("the packages dir")
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(ext))
                .unwrap_or_else(|| panic!("no {ext} was made in {}", out.display()))
        };
        Packages {
            wheel: find(".whl"),
            tarball: find(".tgz"),
            krate,
        }
    })
}

/// `agent-host ARGS` in `dir`, with the test's caches and nothing of the
/// repository's build environment.
fn agent_host(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent-host"));
    cmd.args(args)
        .current_dir(dir)
        .env("AGENT_HOST_TOOLCHAINS", shared().join("toolchains"))
        .env("XDG_CACHE_HOME", shared().join("cache"))
        .env("CARGO_TARGET_DIR", shared().join("plugins-target"))
        .env_remove("AGENT_HOST_CACHE")
        .env_remove("AGENT_HOST_STATE")
        .env_remove("REDIS_URL");
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        cmd.env_remove(var);
    }
    cmd.output().expect("running agent-host")
}

/// Builds the project in `dir`; stderr (with the time) is printed.
fn build(dir: &Path, lang: &str, what: &str) {
    let started = Instant::now();
    let out = ok(agent_host(dir, &["build"]), "agent-host build");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "[{lang}] {what} build: {:.1}s\n{}",
        started.elapsed().as_secs_f64(),
        stderr.trim()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "target/demo.wasm"
    );
}

fn turn(dir: &Path, input: &str) -> String {
    let started = Instant::now();
    let out = ok(
        agent_host(
            dir,
            &[
                "run",
                "target/demo.wasm",
                "--session",
                "alice",
                "--input",
                input,
            ],
        ),
        "agent-host run",
    );
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    eprintln!(
        "run (compiles the new component): {:.1}s: {answer}",
        started.elapsed().as_secs_f64()
    );
    answer
}

/// A failed build's error: one line, which starts with `starts`.
fn fails_naming(dir: &Path, starts: &str) {
    let out = agent_host(dir, &["build"]);
    assert!(
        !out.status.success(),
        "the build of a syntax error succeeded"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!("error: {starts}")),
        "{stderr}"
    );
}

/// `agent-host new demo --lang LANG --sdk PACKAGE` in a new temp dir; the
/// project, which names nothing in the repository.
fn new_project(home: &Path, lang: &str, sdk: &Path) -> PathBuf {
    let sdk = sdk.to_str().expect("a UTF-8 path");
    ok(
        agent_host(home, &["new", "demo", "--lang", lang, "--sdk", sdk]),
        "agent-host new",
    );
    let project = home.join("demo");
    for file in ["README.md", "agent-host.toml", ".gitignore"] {
        assert!(project.join(file).is_file(), "no {file}");
    }
    let repo = root().to_string_lossy().into_owned();
    for entry in std::fs::read_dir(&project).expect("the project") {
        let path = entry.expect("an entry").path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            assert!(
                !text.contains(&repo),
                "{} names the repository",
                path.display()
            );
        }
    }
    project
}

/// The sample config loads (it names the built component, so after a build).
fn config_loads(project: &Path) {
    let path = project.join("agent-host.toml");
    let text = std::fs::read_to_string(&path).expect("reading agent-host.toml");
    let config = agent_host::ConfigFile::parse(&path, &text, None, |_| {
        Some("a-token-of-at-least-16-chars".into())
    });
    assert!(config.is_ok(), "agent-host.toml: {:?}", config.err());
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("reading a project file");
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).expect("writing a project file");
}

#[test]
fn rust() {
    let home = tempfile::tempdir().expect("a temp dir");
    let project = new_project(home.path(), "rust", &packages().krate);
    build(&project, "rust", "first");
    config_loads(&project);
    assert!(turn(&project, "hi").starts_with("turn 1: you said \"hi\""));
    std::fs::write(
        project.join("src/shout.rs"),
        "pub fn shout(s: &str) -> String {\n    s.to_uppercase()\n}\n",
    )
    .expect("writing src/shout.rs");
    let lib = project.join("src/lib.rs");
    edit(&lib, "use agent_sdk::", "mod shout;\n\nuse agent_sdk::");
    edit(&lib, "Ok(format!(", "Ok(shout::shout(&format!(");
    edit(
        &lib,
        "memory.turns\n        ))",
        "memory.turns\n        )))",
    );
    build(&project, "rust", "second");
    assert!(turn(&project, "again").starts_with("TURN 2: YOU SAID \"AGAIN\""));
    std::fs::write(
        project.join("src/shout.rs"),
        "pub fn shout(s: &str) -> String {\n    s.to_uppercase(\n}\n",
    )
    .expect("writing src/shout.rs");
    fails_naming(&project, "src/shout.rs:");
}

#[test]
fn python() {
    let home = tempfile::tempdir().expect("a temp dir");
    let project = new_project(home.path(), "python", &packages().wheel);
    build(&project, "python", "first");
    config_loads(&project);
    assert!(turn(&project, "hi").starts_with("turn 1: you said 'hi'"));
    std::fs::write(
        project.join("shout.py"),
        "def shout(s):\n    return s.upper()\n",
    )
    .expect("writing shout.py");
    let app = project.join("app.py");
    edit(
        &app,
        "from agent_sdk",
        "from shout import shout\nfrom agent_sdk",
    );
    edit(&app, "return f\"turn", "return shout(f\"turn");
    edit(&app, "{previous}\"", "{previous}\")");
    build(&project, "python", "second");
    assert!(turn(&project, "again").starts_with("TURN 2: YOU SAID 'AGAIN'"));
    std::fs::write(
        project.join("shout.py"),
        "def shout(s):\n    return s.upper(\n",
    )
    .expect("writing shout.py");
    fails_naming(&project, "shout.py:");
}

#[test]
fn js() {
    let home = tempfile::tempdir().expect("a temp dir");
    let project = new_project(home.path(), "js", &packages().tarball);
    build(&project, "js", "first");
    config_loads(&project);
    assert!(turn(&project, "hi").starts_with("turn 1: you said \"hi\""));
    // A module of the author's and an npm package (a local one: no registry).
    std::fs::write(
        project.join("shout.js"),
        "import pad from 'pad-it';\nexport const shout = (s) => pad(s.toUpperCase());\n",
    )
    .expect("writing shout.js");
    let pad = home.path().join("pad-it");
    std::fs::create_dir_all(&pad).expect("creating pad-it");
    std::fs::write(
        pad.join("package.json"),
        r#"{"name": "pad-it", "version": "1.0.0", "type": "module", "main": "index.js"}"#,
    )
    .expect("writing pad-it");
    std::fs::write(pad.join("index.js"), "export default (s) => `[${s}]`;\n")
        .expect("writing pad-it");
    edit(
        &project.join("package.json"),
        "\"devDependencies\"",
        "\"dependencies\": {\n    \"pad-it\": \"file:../pad-it\"\n  },\n  \"devDependencies\"",
    );
    let app = project.join("app.js");
    edit(
        &app,
        "import { agent }",
        "import { shout } from './shout.js';\nimport { agent }",
    );
    edit(&app, "return `turn", "return shout(`turn");
    edit(
        &app,
        "JSON.stringify(previous)}`;",
        "JSON.stringify(previous)}`);",
    );
    build(&project, "js", "second");
    assert!(turn(&project, "again").starts_with("[TURN 2: YOU SAID \"AGAIN\""));
    std::fs::write(
        project.join("shout.js"),
        "export const shout = (s) => s.toUpperCase(;\n",
    )
    .expect("writing shout.js");
    fails_naming(&project, "shout.js:1:");
}
