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
/// pinned toolchain under `target/` when it is missing).
struct Scripted {
    name: &'static str,
    /// Python: the directory of `app.py`; JavaScript: the entry file.
    source: &'static str,
    python: bool,
}

impl Scripted {
    const fn python(name: &'static str, dir: &'static str) -> Self {
        Self {
            name,
            source: dir,
            python: true,
        }
    }

    const fn javascript(name: &'static str, file: &'static str) -> Self {
        Self {
            name,
            source: file,
            python: false,
        }
    }

    /// The SDK's build script, its arguments before the output file, the SDK's
    /// sources, and what it needs.
    fn how(&self) -> (&'static str, Vec<&'static str>, &'static str, &'static str) {
        match self.python {
            true => (
                "guest-sdk/python/build.sh",
                vec![self.source, "app"],
                "guest-sdk/python",
                "python3 with venv, and PyPI for componentize-py",
            ),
            false => (
                "guest-sdk/js/build.sh",
                vec![self.source],
                "guest-sdk/js",
                "node and npm, and the npm registry for componentize-js",
            ),
        }
    }
}

const SCRIPTED: &[Scripted] = &[
    Scripted::python("py-tools-agent", "tests/plugins/py-tools-agent"),
    Scripted::javascript("js-tools-agent", "tests/plugins/js-tools-agent/app.js"),
    Scripted::python("py-tools", "examples/py-tools"),
    Scripted::python("py-chat", "examples/py-chat"),
    Scripted::javascript("js-chat", "examples/js-chat/app.js"),
    Scripted::python("py-errors", "tests/plugins/py-errors"),
    Scripted::javascript("js-errors", "tests/plugins/js-errors/app.js"),
    Scripted::python("py-remind", "tests/plugins/py-remind"),
    Scripted::javascript("js-remind", "tests/plugins/js-remind/app.js"),
    Scripted::python("py-mcp-probe", "tests/plugins/py-mcp-probe"),
    Scripted::javascript("js-mcp-probe", "tests/plugins/js-mcp-probe/app.js"),
];

fn build_scripted(root: &Path, target: &Path) {
    for plugin in SCRIPTED {
        let (script, args, sdk, needs) = plugin.how();
        // A JavaScript plugin's sources are its entry file's directory.
        let own = Path::new(plugin.source);
        let own = if plugin.python {
            own
        } else {
            own.parent().unwrap_or(own)
        };
        for source in [Path::new(sdk), own] {
            println!("cargo:rerun-if-changed={}", root.join(source).display());
        }
        let out = target.join(format!("{}.wasm", plugin.name.replace('-', "_")));
        let status = Command::new(root.join(script))
            .current_dir(root)
            .args(&args)
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        if !status.success() {
            panic!(
                "building the plugin {} with {script} failed ({status}). It needs {needs} \
                 (tests/setup.sh installs the toolchain).",
                plugin.name
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
