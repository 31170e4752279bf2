//! What the tests of `agent-host serve` share: a running server and an HTTP client.
// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

pub mod gate;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

pub const TOKEN_A: &str = "token-of-tenant-a-0123456789";
pub const TOKEN_B: &str = "token-of-tenant-b-0123456789";
pub const TOKEN_ADMIN: &str = "token-of-the-operator-0123456789";

/// A running `agent-host serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Config, data and cache; `None` once handed on by `stop`.
    pub dir: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start(config_text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent-host.toml"), config_text).unwrap();
        Self::start_in(dir)
    }

    pub fn start_in(dir: tempfile::TempDir) -> Self {
        let config = dir.path().join("agent-host.toml");
        Self::spawn(dir, &config, &[("TEST_TOKEN_B", TOKEN_B)], &[])
    }

    /// Starts `serve --config config` with `env`; its log goes to `dir`.
    pub fn spawn(
        dir: tempfile::TempDir,
        config: &std::path::Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agent-host"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .args(args)
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("agent-host runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let mut server = Self {
            child,
            base: String::new(),
            dir: Some(dir),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => server.base = base,
            Err(_) => panic!("agent-host serve did not start:\n{}", server.log()),
        }
        server
    }

    pub fn log(&self) -> String {
        let dir = self.dir.as_ref().expect("server dir");
        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM (what a service manager does).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Stops it (SIGTERM) and keeps its directory (config, data, cache) for a new
    /// start.
    pub fn stop(self) -> tempfile::TempDir {
        self.terminate();
        self.exited()
    }

    /// Waits for a server that was sent SIGTERM to exit by itself (bounded by the
    /// grace period), checks it exited cleanly, and hands on its directory.
    pub fn exited(mut self) -> tempfile::TempDir {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit {status}:\n{}", self.log());
        assert!(self.log().contains("stopped"), "{}", self.log());
        self.dir.take().expect("server dir")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub async fn turn(
    s: &Server,
    token: &str,
    plugin: &str,
    session: &str,
    input: &str,
) -> (StatusCode, Value) {
    call(
        reqwest::Method::POST,
        s.url(&format!("/v1/plugins/{plugin}/sessions/{session}/turns")),
        Some(token),
        Some(input),
    )
    .await
}

pub async fn get(s: &Server, token: Option<&str>, path: &str) -> (StatusCode, Value) {
    call(reqwest::Method::GET, s.url(path), token, None).await
}

pub fn kind(body: &Value) -> &str {
    body["error"]["kind"].as_str().unwrap_or("<no error kind>")
}

/// The events of a whole stream: (id, name, data).
pub fn sse_events(text: &str) -> Vec<(u64, String, Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {block:?}"))
                    .to_string()
            };
            let data = serde_json::from_str(&field("data: ")).unwrap();
            (field("id: ").parse().unwrap(), field("event: "), data)
        })
        .collect()
}
