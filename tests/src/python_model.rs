//! The chat-completions stand-in written with Python's standard `http.server`
//! (`tests/servers/chat_completions.py`): a server that reads request bodies by
//! `Content-Length` only, as many small model servers and proxies do. It runs as
//! a `python3` process on a free loopback port, in a temp dir, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use crate::model_server::Recorded;

/// The script, in the repository.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/servers/chat_completions.py");

/// A running stand-in.
pub struct PythonModel {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl PythonModel {
    /// A server that streams when asked to (`"stream": true`).
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// A server that answers plain JSON even when asked to stream, like servers
    /// that do not implement streaming.
    pub fn ignoring_stream() -> Self {
        Self::spawn(Some("--ignore-stream"))
    }

    /// A server that answers 500 with an error body whose start comes at once
    /// and whose rest never does.
    pub fn failing_endlessly() -> Self {
        Self::spawn(Some("--fail-endlessly"))
    }

    fn spawn(flag: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("requests.jsonl");
        let errors = dir.path().join("stderr.txt");
        let stderr = std::fs::File::create(&errors).expect("stderr file");
        let mut command = Command::new("python3");
        command
            .arg(SCRIPT)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(flag) = flag {
            command.arg(flag);
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): these tests need Python 3 on the PATH \
                 (Debian: `apt-get install python3`)"
            )
        });
        let port = crate::python_model::printed_port(&mut child, SCRIPT, &errors);
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server got so far (it writes each request down before answering
    /// it, so a request whose answer arrived is here).
    pub fn requests(&self) -> Vec<Recorded> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|line| {
                let entry: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a bad line in the stand-in's log ({e}): {line}"));
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                Recorded {
                    method: text(&entry["method"]),
                    path: text(&entry["path"]),
                    headers: entry["headers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|pair| (text(&pair[0]), text(&pair[1])))
                        .collect(),
                    body: text(&entry["body"]).into_bytes(),
                }
            })
            .collect()
    }
}

impl Drop for PythonModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port a child server prints on its first line of stdout once it listens
/// (no polling); kills it and panics with its stderr (the file `errors`) if it
/// prints anything else.
pub fn printed_port(
    child: &mut std::process::Child,
    script: &str,
    errors: &std::path::Path,
) -> u16 {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    let read = BufReader::new(stdout).read_line(&mut line);
    match (read, line.trim().parse::<u16>()) {
        (Ok(_), Ok(port)) => port,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(errors).unwrap_or_default();
            panic!("{script} did not start (it printed {line:?}): {stderr}");
        }
    }
}
