//! `agent-host build [DIR]`: builds the plugin project in DIR into
//! `DIR/target/NAME.wasm`, in any of the three languages, and prints that path.
//!
//! - Rust (Cargo.toml): `cargo build --release --target wasm32-wasip2` (the target
//!   is added through rustup when missing); a compile error is cargo's short form,
//!   `src/lib.rs:LINE:COLUMN: error...`.
//! - Python (pyproject.toml or app.py): the SDK's `agent_sdk_build` from a venv in
//!   the toolchain cache (`toolchain.rs`), on `[tool.agent-host] module` (`app`).
//! - JavaScript (package.json): the SDK's `agent-sdk-build` from an npm prefix in
//!   the toolchain cache, on the package's `main` (`app.js`); the author's own npm
//!   dependencies are installed into the project first when they are missing.
//!
//! The SDK's builds already say a syntax error in one line naming the author's
//! file (`app.py:7: SyntaxError: ...`): that line is the error. Progress and
//! times go to stderr: a cold build installed its toolchain first, a warm one
//! found it in the cache.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::Context;

use crate::project::{Lang, Manifest, Project};
use crate::toolchain::{self, Sdk, Toolchain};

/// The SDK version a project without one is built with.
const SDK_VERSION: &str = "0.1.0";

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// A line of progress on stderr.
pub fn note(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "agent-host build: {args}");
}

pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let project = Project::find(&args.dir)?;
    let out = project.output();
    note(format_args!(
        "building the {} plugin {}",
        project.lang.name(),
        project.name
    ));
    let started = Instant::now();
    let toolchain = match project.lang {
        Lang::Rust => {
            rust(&project, &out)?;
            None
        }
        Lang::Python => Some(python(&project, &out)?),
        Lang::Js => Some(js(&project, &out)?),
    };
    let took = started.elapsed().as_secs_f64();
    let how = match toolchain.and_then(|t| t.installed_in) {
        Some(install) => format!(
            "cold: {:.1}s of it installing the toolchain",
            install.as_secs_f64()
        ),
        None if project.lang == Lang::Rust => "cargo".to_owned(),
        None => "warm: the toolchain was in the cache".to_owned(),
    };
    note(format_args!(
        "built {} in {took:.1}s ({how})",
        out.display()
    ));
    crate::outln!("{}", out.display())
}

fn rust(project: &Project, out: &Path) -> anyhow::Result<()> {
    add_wasm_target(&project.dir);
    let mut cargo = Command::new("cargo");
    cargo
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args([
            "--message-format",
            "json-diagnostic-short",
            "--manifest-path",
        ])
        .arg(project.path("Cargo.toml"));
    let done = cargo
        .output()
        .context("running cargo (Rust, through rustup, is needed)")?;
    let mut built = None;
    let mut errors = Vec::new();
    for line in String::from_utf8_lossy(&done.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match message["reason"].as_str() {
            Some("compiler-artifact") => {
                let cdylib = message["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
                let wasm = message["filenames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str())
                    .find(|f| f.ends_with(".wasm"));
                if let (true, Some(wasm)) = (cdylib, wasm) {
                    built = Some(PathBuf::from(wasm));
                }
            }
            Some("compiler-message") if message["message"]["level"] == "error" => {
                if let Some(rendered) = message["message"]["rendered"].as_str() {
                    errors.push(rendered.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    if !done.status.success() {
        // Paths in cargo's messages are relative to the project.
        let located: Vec<_> = errors
            .iter()
            .filter(|e| !e.starts_with("error: aborting due to"))
            .map(|e| match e.starts_with("error") {
                true => e.clone(),
                false => crate::project::under(&project.dir, e).display().to_string(),
            })
            .collect();
        match located.as_slice() {
            [] => anyhow::bail!("cargo build failed: {}", said(&done.stderr)),
            [one] => anyhow::bail!("{one}"),
            [first, rest @ ..] => anyhow::bail!(
                "{first} (and {} more errors: cargo build --target wasm32-wasip2 shows them)",
                rest.len()
            ),
        }
    }
    let built = built.context("cargo built no .wasm: is the crate-type cdylib?")?;
    copy(&built, out)
}

/// Adds the wasm32-wasip2 target to the project's toolchain when rustup is there
/// and it is missing (without rustup, cargo says what is missing).
fn add_wasm_target(dir: &Path) {
    let Ok(listed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .output()
    else {
        return;
    };
    let installed = String::from_utf8_lossy(&listed.stdout);
    if listed.status.success() && !installed.lines().any(|l| l.trim() == "wasm32-wasip2") {
        note(format_args!("adding the wasm32-wasip2 target (rustup)"));
        let _ = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .current_dir(dir)
            .status();
    }
}

fn python(project: &Project, out: &Path) -> anyhow::Result<Toolchain> {
    let (sdk, module) = match &project.manifest {
        Manifest::Toml(pyproject) => {
            let tool = pyproject.get("tool").and_then(|t| t.get("agent-host"));
            let local = tool.and_then(|t| t.get("sdk")).and_then(|s| s.as_str());
            let declared = pyproject
                .get("project")
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str())
                .find(|d| requirement_name(d) == "agent-sdk");
            let sdk = match (local, declared) {
                (Some(path), _) => Sdk::Local(local_path(project, path)?),
                (None, Some(requirement)) => Sdk::Registry(requirement.to_owned()),
                (None, None) => Sdk::Registry(format!("agent-sdk=={SDK_VERSION}")),
            };
            let module = tool.and_then(|t| t.get("module")).and_then(|m| m.as_str());
            (sdk, module.unwrap_or("app").to_owned())
        }
        _ => (
            Sdk::Registry(format!("agent-sdk=={SDK_VERSION}")),
            "app".to_owned(),
        ),
    };
    let toolchain = toolchain::python(&sdk)?;
    let mut build = Command::new(toolchain::python_bin(&toolchain.dir));
    build
        .args(["-m", "agent_sdk_build"])
        .arg(&project.dir)
        .arg(module)
        .arg(out);
    run_quiet(&mut build, "the Python build")?;
    Ok(toolchain)
}

fn js(project: &Project, out: &Path) -> anyhow::Result<Toolchain> {
    let Manifest::Json(package) = &project.manifest else {
        anyhow::bail!("{}: not a package.json", project.dir.display());
    };
    let declared = ["devDependencies", "dependencies"]
        .iter()
        .find_map(|d| package[d]["agent-sdk"].as_str());
    let sdk = match declared {
        Some(spec) => match spec.strip_prefix("file:") {
            Some(path) => Sdk::Local(local_path(project, path)?),
            None => Sdk::Registry(format!("agent-sdk@{spec}")),
        },
        None => Sdk::Registry(format!("agent-sdk@{SDK_VERSION}")),
    };
    let toolchain = toolchain::js(&sdk)?;
    let own = package["dependencies"]
        .as_object()
        .is_some_and(|d| d.keys().any(|k| k != "agent-sdk"));
    if own && !project.path("node_modules").is_dir() {
        note(format_args!(
            "installing the project's dependencies (npm install)"
        ));
        let mut npm = Command::new(toolchain::npm());
        npm.args([
            "install",
            "--omit=dev",
            "--no-audit",
            "--no-fund",
            "--silent",
        ])
        .current_dir(&project.dir);
        run_quiet(&mut npm, "npm install")?;
    }
    let entry = package["main"].as_str().unwrap_or("app.js");
    let script = toolchain
        .dir
        .join("node_modules")
        .join("agent-sdk")
        .join("bin")
        .join("agent-sdk-build.js");
    let mut build = Command::new("node");
    build.arg(script).arg(project.path(entry)).arg(out);
    run_quiet(&mut build, "the JavaScript build")?;
    Ok(toolchain)
}

/// A path the project names, relative to the project.
fn local_path(project: &Project, path: &str) -> anyhow::Result<PathBuf> {
    let full = project.dir.join(path);
    std::fs::canonicalize(&full).with_context(|| {
        format!(
            "the SDK package {} named by the project is not there",
            full.display()
        )
    })
}

/// A PEP 508 requirement's name, normalized: `Agent_SDK >= 0.1` -> `agent-sdk`.
fn requirement_name(requirement: &str) -> String {
    requirement
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace(['_', '.'], "-")
}

/// Runs `command`, its output kept; a failure is what it said on stderr.
pub fn run_quiet(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let program = command.get_program().to_string_lossy().into_owned();
    let done: Output = command.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("{what}: {program} is not installed (or not on PATH)")
        }
        _ => anyhow::anyhow!("{what}: cannot run {program}: {e}"),
    })?;
    if !done.status.success() {
        let text = said(&done.stderr);
        if text.is_empty() {
            anyhow::bail!("{what} failed ({})", done.status);
        }
        anyhow::bail!("{text}");
    }
    Ok(())
}

/// A tool's stderr, trimmed, at most its last 20 lines.
fn said(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
