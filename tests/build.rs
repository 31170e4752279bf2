//! Builds the plugins the tests run (test plugins and examples) for
//! `wasm32-wasip2`, once per change of their sources, and tells the tests where
//! they are (`PLUGIN_<NAME>` env vars at compile time).
//!
//! They build in their own target dir (`target/wasm-plugins`), so this nested cargo
//! never waits for the lock of the build that runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: &[(&str, &str)] = &[
    ("probe", "tests/plugins/probe"),
    ("spin", "tests/plugins/spin"),
    ("hog", "tests/plugins/hog"),
    ("wreck", "tests/plugins/wreck"),
    ("counter", "tests/plugins/counter"),
    ("bench-agent", "tests/plugins/bench-agent"),
    ("hostile", "tests/plugins/hostile"),
    ("chat-memory", "examples/chat-memory"),
    ("notes", "examples/notes"),
    ("llm-chat", "examples/llm-chat"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let target = root.join("target").join("wasm-plugins");

    for dir in ["wit", "guest-sdk"]
        .iter()
        .copied()
        .chain(PLUGINS.iter().map(|(_, d)| *d))
    {
        watch(&root.join(dir));
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target);
    for (name, _) in PLUGINS {
        cmd.args(["-p", name]);
    }
    // Flags meant for the host build must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    if !status.success() {
        panic!(
            "building the test plugins for wasm32-wasip2 failed ({status}). If the target \
             is missing: `rustup target add wasm32-wasip2`."
        );
    }
    build_python(&root, &target);
    build_js(&root, &target);
    for (name, _) in PLUGINS {
        let file = target
            .join("wasm32-wasip2")
            .join("release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        assert!(file.exists(), "{} was not built", file.display());
        let var = format!("PLUGIN_{}", name.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", file.display());
    }
}

/// Python plugins (`guest-sdk/python/build.sh`, which installs the pinned
/// componentize-py under `target/python-venv` when it is missing).
const PYTHON_PLUGINS: &[(&str, &str, &str)] = &[("py-chat", "examples/py-chat", "app")];

fn build_python(root: &Path, target: &Path) {
    watch(&root.join("guest-sdk/python"));
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest-sdk/python/agent_sdk").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guest-sdk/python/build.sh").display()
    );
    for (name, dir, module) in PYTHON_PLUGINS {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
        let out = target
            .join("python")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let status = Command::new(root.join("guest-sdk/python/build.sh"))
            .current_dir(root)
            .arg(dir)
            .arg(module)
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run guest-sdk/python/build.sh: {e}"));
        if !status.success() {
            panic!(
                "building the Python plugin {name} failed ({status}). It needs python3 with venv \
                 and PyPI for componentize-py (tests/setup.sh installs it)."
            );
        }
        let var = format!("PLUGIN_{}", name.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", out.display());
    }
}

/// JavaScript plugins (`guest-sdk/js/build.sh`, which installs the pinned
/// componentize-js under `target/js-tools` when it is missing).
const JS_PLUGINS: &[(&str, &str)] = &[("js-chat", "examples/js-chat/app.js")];

fn build_js(root: &Path, target: &Path) {
    for file in ["agent-sdk.js", "build.sh", "install.sh"] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join("guest-sdk/js").join(file).display()
        );
    }
    for (name, app) in JS_PLUGINS {
        println!("cargo:rerun-if-changed={}", root.join(app).display());
        let out = target
            .join("js")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let status = Command::new(root.join("guest-sdk/js/build.sh"))
            .current_dir(root)
            .arg(app)
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run guest-sdk/js/build.sh: {e}"));
        if !status.success() {
            panic!(
                "building the JavaScript plugin {name} failed ({status}). It needs node and npm \
                 and the npm registry for componentize-js (tests/setup.sh installs it)."
            );
        }
        let var = format!("PLUGIN_{}", name.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", out.display());
    }
}

fn watch(dir: &Path) {
    for name in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", dir.join(name).display());
    }
    // WIT files are directly in `wit/`.
    if dir.ends_with("wit") {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
}
