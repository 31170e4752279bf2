//! A plugin project on disk: its language, found from its build file, and its name.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;

/// The languages a plugin project can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust, with the crate agent-sdk (Cargo.toml).
    Rust,
    /// Python, with the package agent-sdk (pyproject.toml, app.py).
    Python,
    /// JavaScript, with the npm package agent-sdk (package.json, app.js).
    Js,
}

impl Lang {
    /// The language's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

/// A project found in a directory.
pub struct Project {
    pub lang: Lang,
    /// The directory as the user named it (messages name files under it).
    pub dir: PathBuf,
    /// The plugin's name: the component is `target/NAME.wasm`.
    pub name: String,
    /// The build file, parsed: Cargo.toml, pyproject.toml or package.json.
    pub manifest: Manifest,
}

/// A project's build file.
pub enum Manifest {
    Toml(toml::Table),
    Json(serde_json::Value),
    /// A Python project of a bare `app.py`.
    None,
}

impl Project {
    /// The project in `dir`: Cargo.toml (Rust), package.json (JavaScript),
    /// pyproject.toml or app.py (Python), looked for in that order.
    pub fn find(dir: &Path) -> anyhow::Result<Project> {
        if !dir.is_dir() {
            anyhow::bail!("{}: not a directory", dir.display());
        }
        let folder_name = || {
            let full = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            full.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plugin".into())
        };
        let (lang, manifest) = if dir.join("Cargo.toml").is_file() {
            (
                Lang::Rust,
                Manifest::Toml(read_toml(&under(dir, "Cargo.toml"))?),
            )
        } else if dir.join("package.json").is_file() {
            let path = under(dir, "package.json");
            let text = read(&path)?;
            let json = serde_json::from_str(&text)
                .with_context(|| format!("{}: not valid JSON", path.display()))?;
            (Lang::Js, Manifest::Json(json))
        } else if dir.join("pyproject.toml").is_file() {
            let toml = read_toml(&under(dir, "pyproject.toml"))?;
            (Lang::Python, Manifest::Toml(toml))
        } else if dir.join("app.py").is_file() {
            (Lang::Python, Manifest::None)
        } else {
            anyhow::bail!(
                "{}: no plugin project here (no Cargo.toml, package.json, pyproject.toml or \
                 app.py); `agent-host new NAME --lang rust|python|js` makes one",
                dir.display()
            );
        };
        let declared = match (&lang, &manifest) {
            (Lang::Rust | Lang::Python, Manifest::Toml(t)) => {
                let table = if lang == Lang::Rust {
                    "package"
                } else {
                    "project"
                };
                t.get(table)
                    .and_then(|p| p.get("name"))
                    .and_then(|n| n.as_str())
                    .map(str::to_owned)
            }
            (Lang::Js, Manifest::Json(j)) => j["name"].as_str().map(|n| {
                // A scoped package, @scope/name: its name.
                n.rsplit('/').next().unwrap_or(n).to_owned()
            }),
            _ => None,
        };
        let name = declared.unwrap_or_else(folder_name);
        check_name(&name).with_context(|| format!("the project in {}", dir.display()))?;
        Ok(Project {
            lang,
            dir: dir.to_path_buf(),
            name,
            manifest,
        })
    }

    /// `file` under the project's directory, as the user would name it.
    pub fn path(&self, file: impl AsRef<Path>) -> PathBuf {
        under(&self.dir, file)
    }

    /// Where the build puts the component.
    pub fn output(&self) -> PathBuf {
        self.path("target").join(format!("{}.wasm", self.name))
    }
}

/// `file` under `dir`, without a leading `./` when `dir` is the current one.
pub fn under(dir: &Path, file: impl AsRef<Path>) -> PathBuf {
    if dir == Path::new(".") || dir.as_os_str().is_empty() {
        file.as_ref().to_path_buf()
    } else {
        dir.join(file)
    }
}

/// A plugin name: a crate, package and plugin id all at once.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        anyhow::bail!(
            "{name:?} is not a plugin name: 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter"
        );
    }
    Ok(())
}

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn read_toml(path: &Path) -> anyhow::Result<toml::Table> {
    let text = read(path)?;
    text.parse::<toml::Table>()
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}
