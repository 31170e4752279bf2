//! Compiling plugins, with an optional on-disk cache of compiled artifacts.
//!
//! An artifact is keyed on the SHA-256 of the component's bytes and of the engine's
//! compatibility hash (wasmtime version, features and settings), so a changed plugin
//! or a changed host never loads a stale artifact. Artifacts are written to a temp
//! file and renamed, so a crash never leaves half of one under a valid name.
//!
//! ## Behavior
//! The directory is kept under a size cap ([`Cache::max_bytes`], default
//! [`DEFAULT_MAX_BYTES`]): a load from the cache marks the artifact used (its
//! modification time), and after each compile or load the least recently used
//! artifacts go until the rest fit, never the one just used. Every new build of a
//! plugin is a new artifact (its hash changed), so without the cap the directory
//! grew by one artifact per build (a JavaScript plugin's is about 30 MB).

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What the cache may keep by default: 512 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;

/// An on-disk cache of compiled artifacts: where, and how much it may keep.
#[derive(Clone, Debug)]
pub(crate) struct Cache {
    /// The directory (created when the first artifact is written).
    pub(crate) dir: PathBuf,
    /// The most bytes of artifacts kept; the least recently used go first.
    pub(crate) max_bytes: u64,
}

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
    cache: Option<&Cache>,
) -> Result<(Component, Origin, Duration), String> {
    let started = Instant::now();
    let Some(cache) = cache else {
        let component = compile_now(engine, wasm)?;
        return Ok((component, Origin::Compiled, started.elapsed()));
    };
    let dir = cache.dir.as_path();
    let path = artifact_path(engine, wasm, dir);
    if path.is_file() {
        match load_artifact(engine, &path) {
            Ok(component) => {
                let elapsed = started.elapsed();
                mark_used(&path);
                evict(dir, cache.max_bytes, &path);
                return Ok((component, Origin::Cached, elapsed));
            }
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %format!("{e:#}"),
                "cached plugin artifact unusable; compiling again"
            ),
        }
    }
    let component = compile_now(engine, wasm)?;
    let elapsed = started.elapsed();
    // A cache that cannot be written costs the next start a compile, nothing more.
    match store_artifact(&component, dir, &path) {
        Ok(()) => evict(dir, cache.max_bytes, &path),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the plugin cache")
        }
    }
    Ok((component, Origin::Compiled, elapsed))
}

fn compile_now(engine: &Engine, wasm: &[u8]) -> Result<Component, String> {
    tracing::debug!(bytes = wasm.len(), "compiling the component");
    Component::new(engine, wasm).map_err(invalid)
}

/// Marks an artifact as just used: eviction goes by modification time.
fn mark_used(path: &Path) {
    let touched = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!(path = %path.display(), error = %e, "cannot mark a cached artifact used");
    }
}

/// Removes the least recently used artifacts of `dir` until the rest take at most
/// `max_bytes`, keeping `keep` (the one just used) whatever its size. Files that
/// are not artifacts are left alone; one that another host removed first is
/// skipped. A host that has an artifact loaded keeps running it (the mapping
/// outlives the file).
fn evict(dir: &Path, max_bytes: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut artifacts: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            Some((used, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = artifacts.iter().map(|(_, len, _)| len).sum();
    if total <= max_bytes {
        return;
    }
    artifacts.sort();
    let (mut removed, mut freed) = (0u32, 0u64);
    for (_, len, path) in artifacts {
        if total <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                (removed, freed) = (removed + 1, freed + len);
                total -= len;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot evict a cached artifact")
            }
        }
    }
    tracing::info!(
        dir = %dir.display(),
        removed,
        freed_bytes = freed,
        kept_bytes = total,
        max_bytes,
        "plugin cache over its cap: least recently used artifacts removed"
    );
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{Cache, Origin, compile};

    /// An empty component with a custom section holding `n`: a distinct, tiny
    /// component per `n` that compiles in microseconds.
    fn tiny(n: u8) -> Vec<u8> {
        let mut wasm = b"\0asm\x0d\x00\x01\x00".to_vec();
        wasm.extend_from_slice(&[0, 3, 1, b'x', n]);
        wasm
    }

    fn artifacts(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn the_least_recently_used_artifacts_go_beyond_the_cap() {
        let engine = wasmtime::Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let run = |n: u8, max_bytes: u64| {
            let cache = Cache {
                dir: dir.path().to_path_buf(),
                max_bytes,
            };
            compile(&engine, &tiny(n), Some(&cache)).unwrap().1
        };
        // Two artifacts, the first one used longest ago.
        assert_eq!(run(1, u64::MAX), Origin::Compiled);
        assert_eq!(run(2, u64::MAX), Origin::Compiled);
        let mut sizes = Vec::new();
        for (age, entry) in std::fs::read_dir(dir.path()).unwrap().enumerate() {
            let path = entry.unwrap().path();
            sizes.push(std::fs::metadata(&path).unwrap().len());
            let when = SystemTime::now() - Duration::from_secs(100 + age as u64);
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(when).unwrap();
        }
        // Room for two and a half artifacts: a third one must evict one.
        let cap = sizes.iter().max().unwrap() * 5 / 2;
        // Loading 1 from the cache makes it the most recently used...
        assert_eq!(run(1, cap), Origin::Cached);
        // ...so compiling 3 evicts 2, and 1 and 3 stay.
        assert_eq!(run(3, cap), Origin::Compiled);
        assert_eq!(artifacts(dir.path()), 2);
        assert_eq!(run(1, cap), Origin::Cached);
        assert_eq!(run(3, cap), Origin::Cached);
        assert_eq!(run(2, cap), Origin::Compiled, "2 was evicted");
        assert_eq!(artifacts(dir.path()), 2);

        // The artifact just used stays even when it alone is over the cap.
        assert_eq!(run(4, 1), Origin::Compiled);
        assert_eq!(artifacts(dir.path()), 1);
        assert_eq!(run(4, 1), Origin::Cached);
        // Files that are not artifacts are left alone.
        std::fs::write(dir.path().join("notes.txt"), "x".repeat(100)).unwrap();
        assert_eq!(run(5, 1), Origin::Compiled);
        assert_eq!(artifacts(dir.path()), 2);
    }
}
