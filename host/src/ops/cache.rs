//! Compiling plugins, with an optional on-disk cache of compiled artifacts.
//!
//! An artifact is keyed on the SHA-256 of the component's bytes and of the engine's
//! compatibility hash (wasmtime version, features and settings), so a changed plugin
//! or a changed host never loads a stale artifact. Artifacts are written to a temp
//! file and renamed, so a crash never leaves half of one under a valid name.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a plugin's compiled code was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now (and written to the cache if there is one).
    Compiled,
    /// Loaded from the cache.
    Cached,
}

/// Feeds `Hash` output into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn artifact_path(engine: &Engine, wasm: &[u8], dir: &Path) -> PathBuf {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.write(&Sha256::digest(wasm));
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    let digest = hasher.0.finalize();
    let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.cwasm"))
}

/// Loads a compiled artifact that this module wrote.
#[allow(unsafe_code)]
fn load_artifact(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts the file to be wasmtime output. Files in the
    // cache are written only by `compile` below (temp file + rename), named by the
    // hash of their source and of the engine settings, in a directory the operator
    // gives to the host alone; wasmtime itself still checks the header, version and
    // settings and refuses a file made for another engine.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Compiles `wasm`, or loads it from `cache` when it was compiled before. Blocking.
pub(crate) fn compile(
    engine: &Engine,
    wasm: &[u8],
    cache: Option<&Path>,
) -> Result<(Component, Origin, Duration), String> {
    let started = Instant::now();
    let Some(dir) = cache else {
        let component = Component::new(engine, wasm).map_err(invalid)?;
        return Ok((component, Origin::Compiled, started.elapsed()));
    };
    let path = artifact_path(engine, wasm, dir);
    if path.is_file() {
        match load_artifact(engine, &path) {
            Ok(component) => return Ok((component, Origin::Cached, started.elapsed())),
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %format!("{e:#}"),
                "cached plugin artifact unusable; compiling again"
            ),
        }
    }
    let component = Component::new(engine, wasm).map_err(invalid)?;
    let elapsed = started.elapsed();
    // A cache that cannot be written costs the next start a compile, nothing more.
    if let Err(e) = store_artifact(&component, dir, &path) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write the plugin cache");
    }
    Ok((component, Origin::Compiled, elapsed))
}

/// Why `Component::new` refused a file, in one line: wasmparser's message for a
/// file that is not WebAssembly at all spans lines of byte dumps.
fn invalid(e: wasmtime::Error) -> String {
    let text = format!("{e:#}");
    if text.contains("magic header not detected") {
        return "not a WebAssembly file (it does not start with \\0asm)".into();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn store_artifact(component: &Component, dir: &Path, path: &Path) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut tmp, &bytes).map_err(|e| e.to_string())?;
    tmp.persist(path).map_err(|e| e.to_string())?;
    Ok(())
}
