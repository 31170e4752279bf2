//! The crates agent-sdk and agent-host build from their `.crate`, as `cargo
//! package` makes it (its verification builds the unpacked crate, which can read
//! nothing outside it), and the WIT every package carries is the root `wit/`.
//!
//! The verification builds in the workspace's target dir with the workspace's dev
//! profile (a packaged crate is its own workspace and would not have it), so the
//! dependencies the workspace built are reused: agent-host verifies in ~20 s
//! instead of ~7 min.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The target dir this test was built in (`CARGO_TARGET_TMPDIR` is `target/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .to_path_buf()
}

/// `--config` arguments giving the workspace's `[profile.dev]` to a packaged crate.
fn dev_profile() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = text.parse().expect("Cargo.toml parses");
    let mut args = Vec::new();
    let Some(dev) = manifest
        .get("profile")
        .and_then(|p| p.get("dev"))
        .and_then(|d| d.as_table())
    else {
        return args;
    };
    for (key, value) in dev {
        match (key.as_str(), value) {
            ("package", toml::Value::Table(packages)) => {
                for (name, settings) in packages {
                    for (setting, value) in settings.as_table().into_iter().flatten() {
                        let value = literal(value);
                        args.push(format!("profile.dev.package.{name}.{setting}={value}"));
                    }
                }
            }
            (key, value) => args.push(format!("profile.dev.{key}={}", literal(value))),
        }
    }
    args
}

/// A TOML string, integer or boolean as TOML (JSON writes them the same way).
fn literal(value: &toml::Value) -> String {
    serde_json::to_string(value).expect("a profile setting")
}

/// Runs `cargo package -p CRATE` with its verification; panics with cargo's
/// report when the crate does not build from its package.
fn package_and_verify(krate: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["package", "-p", krate, "--allow-dirty"])
        .arg("--target-dir")
        .arg(target_dir());
    for setting in dev_profile() {
        cmd.arg("--config").arg(setting);
    }
    let started = std::time::Instant::now();
    let out = cmd.output().expect("running cargo package");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo package -p {krate} failed:\n{stderr}"
    );
    assert!(stderr.contains("Verifying"), "{stderr}");
    eprintln!(
        "cargo package -p {krate} (verified) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let crate_file = target_dir()
        .join("package")
        .join(format!("{krate}-{}.crate", env!("CARGO_PKG_VERSION")));
    let listed = Command::new("tar")
        .arg("-tzf")
        .arg(&crate_file)
        .output()
        .expect("running tar");
    let files = String::from_utf8_lossy(&listed.stdout);
    assert!(
        files.contains("/wit/agent-state.wit"),
        "{} has no wit/:\n{files}",
        crate_file.display()
    );
}

#[test]
fn agent_sdk_builds_from_its_crate() {
    package_and_verify("agent-sdk");
}

#[test]
fn agent_host_builds_from_its_crate() {
    package_and_verify("agent-host");
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("reading a WIT dir") {
            let path = entry.expect("a dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_package_carries_the_root_wit() {
    let wit = root().join("wit");
    let want = files(&wit);
    assert!(want.iter().any(|f| f.ends_with("agent-state.wit")));
    for copy in [
        "host/wit",
        "guest-sdk/wit",
        "guest-sdk/python/agent_sdk_build/wit",
        "guest-sdk/js/wit",
    ] {
        let dir = root().join(copy);
        let fix = "edit wit/ and run tests/sync-wit.sh";
        assert_eq!(files(&dir), want, "{copy} has other files than wit/: {fix}");
        for file in &want {
            let same = std::fs::read(wit.join(file)).ok() == std::fs::read(dir.join(file)).ok();
            assert!(
                same,
                "{copy}/{} differs from wit/{}: {fix}",
                file.display(),
                file.display()
            );
        }
    }
}
