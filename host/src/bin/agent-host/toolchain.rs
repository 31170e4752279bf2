//! The toolchains `agent-host build` installs for Python and JavaScript plugins,
//! in the user's cache directory, never in a project or a clone:
//! `$AGENT_HOST_TOOLCHAINS`, else `$XDG_CACHE_HOME/agent-host/toolchains`, else
//! `~/.cache/agent-host/toolchains`.
//!
//! One toolchain per SDK package: a venv with the Python SDK (which pins
//! componentize-py), or an npm prefix with the JavaScript SDK (which pins
//! componentize-js and rolldown). It is keyed by the SDK's spec and, for a local
//! package, a hash of its files, so a changed SDK gets a new toolchain and every
//! project on the same SDK shares one: only the first build installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::build::{note, run_quiet};

/// Marks a toolchain whose install finished (a half-made one is made again).
const INSTALLED: &str = ".agent-host-installed";

/// Where an SDK package comes from: a registry requirement or a local package.
pub enum Sdk {
    /// `agent-sdk==0.1.0` (pip) or `agent-sdk@0.1.0` (npm).
    Registry(String),
    /// A wheel, an npm tarball, or a package's directory.
    Local(PathBuf),
}

impl Sdk {
    fn argument(&self) -> String {
        match self {
            Sdk::Registry(spec) => spec.clone(),
            Sdk::Local(path) => path.display().to_string(),
        }
    }
}

/// An installed toolchain.
pub struct Toolchain {
    pub dir: PathBuf,
    /// How long installing it took, when this build installed it (a cold build).
    pub installed_in: Option<Duration>,
}

/// The directory all toolchains live in.
pub fn root() -> anyhow::Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("AGENT_HOST_TOOLCHAINS") {
        return Ok(PathBuf::from(dir));
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no cache directory: set AGENT_HOST_TOOLCHAINS, XDG_CACHE_HOME or HOME")?;
    Ok(cache.join("agent-host").join("toolchains"))
}

/// The venv's interpreter.
pub fn python_bin(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// The Python toolchain of `sdk`: a venv with the SDK installed by pip.
pub fn python(sdk: &Sdk) -> anyhow::Result<Toolchain> {
    ensure("python", sdk, |dir| {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(dir)
            .output();
        let made = made.context("running python3 (Python 3.10 or later, with venv, is needed)")?;
        if !made.status.success() {
            anyhow::bail!(
                "python3 -m venv failed: {}",
                String::from_utf8_lossy(&made.stderr).trim()
            );
        }
        let mut pip = Command::new(python_bin(dir));
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(sdk.argument());
        run_quiet(&mut pip, "pip install")
    })
}

/// The JavaScript toolchain of `sdk`: an npm prefix with the SDK installed.
pub fn js(sdk: &Sdk) -> anyhow::Result<Toolchain> {
    ensure("js", sdk, |dir| {
        std::fs::write(dir.join("package.json"), "{\"private\": true}\n")
            .with_context(|| format!("writing {}", dir.display()))?;
        let mut npm = Command::new(npm());
        npm.arg("install")
            .arg("--prefix")
            .arg(dir)
            // A directory is copied in, not linked (its dependencies would be
            // installed into it).
            .args(["--install-links", "--no-audit", "--no-fund", "--silent"])
            .arg(sdk.argument());
        run_quiet(&mut npm, "npm install")
    })
}

/// `npm` (`npm.cmd` on Windows).
pub fn npm() -> &'static str {
    if cfg!(windows) { "npm.cmd" } else { "npm" }
}

/// The toolchain of `sdk` in `kind-KEY`, installed by `install` unless it was.
fn ensure(
    kind: &str,
    sdk: &Sdk,
    install: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<Toolchain> {
    let dir = root()?.join(format!("{kind}-{}", key(sdk)?));
    if dir.join(INSTALLED).is_file() {
        return Ok(Toolchain {
            dir,
            installed_in: None,
        });
    }
    let started = Instant::now();
    note(format_args!(
        "installing the {kind} toolchain (agent-sdk from {}) into {}",
        sdk.argument(),
        dir.display()
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    install(&dir)?;
    std::fs::write(dir.join(INSTALLED), sdk.argument())
        .with_context(|| format!("writing {}", dir.display()))?;
    let took = started.elapsed();
    note(format_args!(
        "toolchain installed in {:.1}s",
        took.as_secs_f64()
    ));
    Ok(Toolchain {
        dir,
        installed_in: Some(took),
    })
}

/// 16 hex digits of the SHA-256 of the spec, or of a local package's name and files.
fn key(sdk: &Sdk) -> anyhow::Result<String> {
    let mut hash = Sha256::new();
    match sdk {
        Sdk::Registry(spec) => hash.update(spec.as_bytes()),
        // Not where it is: each project has its own copy in vendor/.
        Sdk::Local(path) => {
            hash.update(path.file_name().unwrap_or_default().as_encoded_bytes());
            hash_files(path, &mut hash)?;
        }
    }
    let digest = hash.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Feeds the names and contents of the files under `path` (or the file) to `hash`,
/// in a stable order, leaving out build output and caches.
fn hash_files(path: &Path, hash: &mut Sha256) -> anyhow::Result<()> {
    if path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        hash.update(&bytes);
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_name().unwrap_or_default().to_string_lossy();
        let skipped = name.starts_with('.')
            || matches!(&*name, "node_modules" | "__pycache__" | "target" | "dist");
        if skipped {
            continue;
        }
        hash.update(name.as_bytes());
        hash_files(&entry, hash)?;
    }
    Ok(())
}
