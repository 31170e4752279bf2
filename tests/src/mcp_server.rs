//! An MCP server written with the official Python SDK (`tests/servers/mcp_server.py`,
//! `mcp==2.3.0` in `target/mcp-venv`, which `tests/setup.sh` installs): the
//! Streamable HTTP transport on a free loopback port, with sessions, answering
//! with event streams or (`json`) plain JSON, its tools listed in pages of one. It
//! runs as a process of that venv's `python`, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

/// The script, in the repository.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/servers/mcp_server.py");

/// A running server.
pub struct McpServer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

/// The venv's interpreter, checked to import the SDK.
fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/mcp-venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import mcp.server.mcpserver"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the MCP tests need the official MCP Python SDK (mcp==2.3.0) in {}: run tests/setup.sh \
         (or `python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install -r \
         tests/servers/mcp.requirements.txt`)",
        python.display()
    );
    python
}

impl McpServer {
    /// A server answering each request with an event stream (`add` sends a log
    /// notification before its result).
    pub fn start() -> Self {
        Self::spawn(false)
    }

    /// A server answering each request with one `application/json` body.
    pub fn json() -> Self {
        Self::spawn(true)
    }

    fn spawn(json: bool) -> Self {
        let python = python();
        let dir = tempfile::tempdir().expect("temp dir");
        let errors = dir.path().join("stderr.txt");
        let stderr = std::fs::File::create(&errors).expect("stderr file");
        let mut command = Command::new(&python);
        command
            .arg(SCRIPT)
            .args(["--page-size", "1"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if json {
            command.arg("--json");
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", python.display()));
        let port = crate::python_model::printed_port(&mut child, SCRIPT, &errors);
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`, for the plugin's allowed origins.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("{}/mcp", self.origin())
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
