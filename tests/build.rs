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
    ("legacy", "tests/plugins/legacy"),
    ("kv-probe", "tests/plugins/kv-probe"),
    ("spin-kv", "tests/plugins/spin-kv"),
    ("remind", "tests/plugins/remind"),
    ("mcp-probe", "tests/plugins/mcp-probe"),
    ("tools-agent", "tests/plugins/tools"),
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
    build_scripted(&root, &target.join("scripted"));
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

/// A plugin in another language, built by its SDK's script (which installs the
/// pinned toolchain under `target/` when it is missing): name, script, the
/// script's arguments before the output file, the sources it reads, what it needs.
struct Scripted {
    name: &'static str,
    script: &'static str,
    args: &'static [&'static str],
    sources: &'static [&'static str],
    needs: &'static str,
}

const SCRIPTED: &[Scripted] = &[
    Scripted {
        name: "py-tools-agent",
        script: "guest-sdk/python/build.sh",
        args: &["tests/plugins/py-tools-agent", "app"],
        sources: &["guest-sdk/python", "tests/plugins/py-tools-agent"],
        needs: "python3 with venv, and PyPI for componentize-py",
    },
    Scripted {
        name: "js-tools-agent",
        script: "guest-sdk/js/build.sh",
        args: &["tests/plugins/js-tools-agent/app.js"],
        sources: &["guest-sdk/js", "tests/plugins/js-tools-agent"],
        needs: "node and npm, and the npm registry for componentize-js",
    },
    Scripted {
        name: "py-tools",
        script: "guest-sdk/python/build.sh",
        args: &["examples/py-tools", "app"],
        sources: &["guest-sdk/python", "examples/py-tools"],
        needs: "python3 with venv, and PyPI for componentize-py",
    },
    Scripted {
        name: "py-chat",
        script: "guest-sdk/python/build.sh",
        args: &["examples/py-chat", "app"],
        sources: &["guest-sdk/python", "examples/py-chat"],
        needs: "python3 with venv, and PyPI for componentize-py",
    },
    Scripted {
        name: "js-chat",
        script: "guest-sdk/js/build.sh",
        args: &["examples/js-chat/app.js"],
        sources: &["guest-sdk/js", "examples/js-chat"],
        needs: "node and npm, and the npm registry for componentize-js",
    },
    Scripted {
        name: "py-errors",
        script: "guest-sdk/python/build.sh",
        args: &["tests/plugins/py-errors", "app"],
        sources: &["guest-sdk/python", "tests/plugins/py-errors"],
        needs: "python3 with venv, and PyPI for componentize-py",
    },
    Scripted {
        name: "js-errors",
        script: "guest-sdk/js/build.sh",
        args: &["tests/plugins/js-errors/app.js"],
        sources: &["guest-sdk/js", "tests/plugins/js-errors"],
        needs: "node and npm, and the npm registry for componentize-js",
    },
    Scripted {
        name: "py-remind",
        script: "guest-sdk/python/build.sh",
        args: &["tests/plugins/py-remind", "app"],
        sources: &["guest-sdk/python", "tests/plugins/py-remind"],
        needs: "python3 with venv, and PyPI for componentize-py",
    },
    Scripted {
        name: "js-remind",
        script: "guest-sdk/js/build.sh",
        args: &["tests/plugins/js-remind/app.js"],
        sources: &["guest-sdk/js", "tests/plugins/js-remind"],
        needs: "node and npm, and the npm registry for componentize-js",
    },
    Scripted {
        name: "py-mcp-probe",
        script: "guest-sdk/python/build.sh",
        args: &["tests/plugins/py-mcp-probe", "app"],
        sources: &["guest-sdk/python", "tests/plugins/py-mcp-probe"],
        needs: "python3 with venv, and PyPI for componentize-py",
    },
    Scripted {
        name: "js-mcp-probe",
        script: "guest-sdk/js/build.sh",
        args: &["tests/plugins/js-mcp-probe/app.js"],
        sources: &["guest-sdk/js", "tests/plugins/js-mcp-probe"],
        needs: "node and npm, and the npm registry for componentize-js",
    },
];

fn build_scripted(root: &Path, target: &Path) {
    for plugin in SCRIPTED {
        for source in plugin.sources {
            println!("cargo:rerun-if-changed={}", root.join(source).display());
        }
        let out = target.join(format!("{}.wasm", plugin.name.replace('-', "_")));
        let status = Command::new(root.join(plugin.script))
            .current_dir(root)
            .args(plugin.args)
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", plugin.script));
        if !status.success() {
            panic!(
                "building the plugin {} with {} failed ({status}). It needs {} \
                 (tests/setup.sh installs the toolchain).",
                plugin.name, plugin.script, plugin.needs
            );
        }
        let var = format!("PLUGIN_{}", plugin.name.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", out.display());
    }
}

/// Watches a crate's sources, or the whole `wit/` directory. Only paths that
/// exist: a missing one makes cargo run this script on every build.
fn watch(dir: &Path) {
    if dir.ends_with("wit") {
        println!("cargo:rerun-if-changed={}", dir.display());
        return;
    }
    for name in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", dir.join(name).display());
    }
}
