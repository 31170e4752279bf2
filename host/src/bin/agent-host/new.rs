//! `agent-host new NAME --lang rust|python|js`: writes a plugin project that
//! `agent-host build` builds and `agent-host run` runs, with a README of those
//! commands and a sample `agent-host.toml` for `serve`.
//!
//! The SDK is a registry dependency (`agent-sdk` 0.1 on crates.io, PyPI or npm).
//! Until it is published there, `--sdk` names a local package of it, which goes
//! into the project's `vendor/`, so the project does not depend on where the SDK
//! was: a `.crate` (`cargo package -p agent-sdk`) is unpacked to
//! `vendor/agent-sdk` and patched in (`[patch.crates-io]`), a wheel or an `npm pack`
//! tarball is copied. A directory (an SDK checkout) is referred to where it is.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::project::{Lang, check_name};

#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name (a-z, 0-9, '-', '_'): the project's directory, package
    /// and plugin id.
    name: String,
    /// The plugin's language.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The SDK as a local package, until it is on the registry: a `.crate` or the
    /// crate's directory (Rust), a wheel or the package's directory (Python), an
    /// `npm pack` tarball or the package's directory (JavaScript). Without it the
    /// project depends on agent-sdk 0.1 from the registry.
    #[arg(long)]
    sdk: Option<PathBuf>,
    /// Where to make the project's directory.
    #[arg(long, default_value = ".")]
    parent: PathBuf,
}

/// A file of the project: its path and text.
type File = (&'static str, String);

pub fn new(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let dir = args.parent.join(&args.name);
    if dir.exists() {
        anyhow::bail!("{} already exists", dir.display());
    }
    let sdk = match &args.sdk {
        Some(path) => Some(
            std::fs::canonicalize(path)
                .with_context(|| format!("--sdk {}: not found", path.display()))?,
        ),
        None => None,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let made = match args.lang {
        Lang::Rust => rust(&dir, &args.name, sdk.as_deref()),
        Lang::Python => python(&dir, &args.name, sdk.as_deref()),
        Lang::Js => js(&dir, &args.name, sdk.as_deref()),
    };
    let files = match made {
        Ok(files) => files,
        Err(e) => {
            // Nothing half made is left behind.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    for (path, text) in files.iter().chain(&common(&args.name, args.lang)) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let shown = crate::project::under(&args.parent, &args.name);
    crate::outln!("made {} ({} plugin)", shown.display(), args.lang.name())?;
    crate::outln!("next: cd {} && agent-host build", shown.display())
}

fn fill(template: &str, name: &str) -> String {
    template.replace("{{name}}", name)
}

/// The README and the sample config.
fn common(name: &str, lang: Lang) -> Vec<File> {
    let (source, manifest, toolchain) = match lang {
        Lang::Rust => (
            "`src/lib.rs`",
            "`Cargo.toml`",
            "the `wasm32-wasip2` target, through rustup",
        ),
        Lang::Python => (
            "`app.py`",
            "`pyproject.toml`",
            "the SDK and componentize-py, in a venv in agent-host's cache directory",
        ),
        Lang::Js => (
            "`app.js`",
            "`package.json`",
            "the SDK, componentize-js and rolldown, in agent-host's cache directory",
        ),
    };
    let readme = fill(include_str!("templates/README.md"), name)
        .replace("{{language}}", lang.name())
        .replace("{{source}}", source)
        .replace("{{manifest}}", manifest)
        .replace("{{toolchain}}", toolchain);
    let ignore = match lang {
        Lang::Js => "target/\n.agent-host/\nnode_modules/\n",
        _ => "target/\n.agent-host/\n__pycache__/\n",
    };
    vec![
        ("README.md", readme),
        (
            "agent-host.toml",
            fill(include_str!("templates/agent-host.toml"), name),
        ),
        (".gitignore", ignore.to_owned()),
    ]
}

fn rust(dir: &Path, name: &str, sdk: Option<&Path>) -> anyhow::Result<Vec<File>> {
    let patch = match sdk {
        None => String::new(),
        Some(sdk) => {
            let path = if sdk.is_dir() {
                expect_file(sdk, "Cargo.toml", "the agent-sdk crate's directory")?;
                toml_string(&sdk.to_string_lossy())
            } else {
                unpack_crate(sdk, &dir.join("vendor").join("agent-sdk"))?;
                "\"vendor/agent-sdk\"".to_owned()
            };
            format!(
                "\n# agent-sdk from a local package (agent-host new --sdk) until it is on crates.io.\n\
                 [patch.crates-io]\nagent-sdk = {{ path = {path} }}\n"
            )
        }
    };
    Ok(vec![
        (
            "Cargo.toml",
            fill(include_str!("templates/rust.Cargo.toml"), name).replace("{{patch}}", &patch),
        ),
        (
            "src/lib.rs",
            fill(include_str!("templates/rust.lib.rs"), name),
        ),
    ])
}

fn python(dir: &Path, name: &str, sdk: Option<&Path>) -> anyhow::Result<Vec<File>> {
    let sdk_line = match sdk {
        None => String::new(),
        Some(sdk) if sdk.is_dir() => {
            expect_file(sdk, "pyproject.toml", "the Python SDK's directory")?;
            format!(
                "# The SDK from a local package (agent-host new --sdk) until it is on PyPI.\n\
                 sdk = {}\n",
                toml_string(&sdk.to_string_lossy())
            )
        }
        Some(sdk) => {
            let file = vendor(sdk, dir, ".whl", "a wheel (.whl)")?;
            format!(
                "# The SDK from a local package (agent-host new --sdk) until it is on PyPI;\n\
                 # without agent-host: pip install {file}\nsdk = {}\n",
                toml_string(&file)
            )
        }
    };
    Ok(vec![
        (
            "app.py",
            fill(include_str!("templates/python.app.py"), name),
        ),
        (
            "pyproject.toml",
            fill(include_str!("templates/python.pyproject.toml"), name)
                .replace("{{sdk}}", &sdk_line),
        ),
    ])
}

fn js(dir: &Path, name: &str, sdk: Option<&Path>) -> anyhow::Result<Vec<File>> {
    let spec = match sdk {
        None => "0.1.0".to_owned(),
        Some(sdk) if sdk.is_dir() => {
            expect_file(sdk, "package.json", "the JavaScript SDK's directory")?;
            format!("file:{}", sdk.display())
        }
        Some(sdk) => format!(
            "file:{}",
            vendor(sdk, dir, ".tgz", "an npm pack tarball (.tgz)")?
        ),
    };
    let spec = serde_json::to_string(&spec)?;
    let package =
        fill(include_str!("templates/js.package.json"), name).replace("\"{{sdk}}\"", &spec);
    Ok(vec![
        ("app.js", fill(include_str!("templates/js.app.js"), name)),
        ("package.json", package),
    ])
}

/// Copies the SDK package file into the project's `vendor/`; its path there.
fn vendor(sdk: &Path, dir: &Path, ext: &str, what: &str) -> anyhow::Result<String> {
    let file_name = sdk
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !file_name.ends_with(ext) {
        anyhow::bail!("--sdk {}: not {what} or a directory", sdk.display());
    }
    let vendor = dir.join("vendor");
    std::fs::create_dir_all(&vendor).with_context(|| format!("creating {}", vendor.display()))?;
    std::fs::copy(sdk, vendor.join(&file_name))
        .with_context(|| format!("copying {}", sdk.display()))?;
    Ok(format!("vendor/{file_name}"))
}

/// Unpacks a `.crate` (a gzipped tar of `NAME-VERSION/...`) into `into`, with
/// the system's `tar` (GNU tar and bsdtar both read it).
fn unpack_crate(file: &Path, into: &Path) -> anyhow::Result<()> {
    if file.extension().is_none_or(|e| e != "crate") {
        anyhow::bail!(
            "--sdk {}: not a .crate (cargo package -p agent-sdk) or a directory",
            file.display()
        );
    }
    std::fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    let done = Command::new("tar")
        .arg("-xzf")
        .arg(file)
        .arg("-C")
        .arg(into)
        .arg("--strip-components=1")
        .output()
        .context("running tar to unpack the .crate")?;
    if !done.status.success() {
        let said = String::from_utf8_lossy(&done.stderr);
        anyhow::bail!("unpacking {}: {}", file.display(), said.trim());
    }
    expect_file(into, "Cargo.toml", "an unpacked agent-sdk crate")
}

fn expect_file(dir: &Path, file: &str, what: &str) -> anyhow::Result<()> {
    if !dir.join(file).is_file() {
        anyhow::bail!("{}: no {file}, so not {what}", dir.display());
    }
    Ok(())
}

/// A TOML basic string (JSON's escapes are a subset of TOML's).
fn toml_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::{Lang, common};

    /// The sample config serves the plugin under the prefix `run` gives it by
    /// default, so `run` and `serve` in a new project see the same sessions.
    #[test]
    fn the_sample_config_uses_the_prefix_run_uses() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let files = common("echo-py", lang);
            let (_, config) = files
                .iter()
                .find(|(path, _)| *path == "agent-host.toml")
                .expect("a sample config");
            let prefix = crate::run::prefix_of("echo-py").expect("a prefix");
            assert!(
                config.contains(&format!("prefix = \"{prefix}\"")),
                "{config}"
            );
        }
    }
}
