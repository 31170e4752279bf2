//! Debian's `nginx` as a reverse proxy on a free loopback port, in a temp dir of
//! its own (its config, pid file, logs and temp paths), in front of another
//! server; stopped on drop. It is configured as one would put it in front of a
//! model server: HTTP/1.1 to the upstream, no response buffering (so a streamed
//! answer passes as it comes).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long nginx may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nginx.
pub struct Nginx {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Nginx {
    /// A proxy passing every request to `upstream` (`http://127.0.0.1:PORT`).
    pub fn proxy_to(upstream: &str) -> Self {
        let binary = binary();
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::spawn(&binary, upstream) {
                Ok(nginx) => return nginx,
                // Another process took the port between our probe and nginx's bind.
                Err(e) => last_error = e,
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    fn spawn(binary: &Path, upstream: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        std::fs::write(
            dir.path().join("nginx.conf"),
            config(dir.path(), port, upstream),
        )
        .expect("write nginx.conf");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .args(["-c", "nginx.conf", "-e", "error.log", "-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut nginx = Self { child, port, dir };
        // nginx says nothing when it is ready: wait until its port accepts, or it
        // exits (a bad config, a port taken).
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited ({status}): {}", nginx.error_log()));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(nginx);
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "nginx did not listen on {port} within {START_TIMEOUT:?}: {}",
                    nginx.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Per request passed on so far, in order: the client connection's serial
    /// number and how many requests that connection had carried with this one.
    pub fn connections(&self) -> Vec<(u64, u64)> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let (connection, requests) = line.split_once(' ')?;
                Some((connection.parse().ok()?, requests.parse().ok()?))
            })
            .collect()
    }

    /// What nginx logged as errors so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx binary: on the PATH, or where Debian puts it (`/usr/sbin`, which a
/// user's PATH may lack).
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed: these tests put it in front of a model server. \
                 Run tests/setup.sh, or `sudo apt-get install nginx` (Debian; the tests \
                 start it themselves on a free port, it need not run as a service)"
            )
        })
}

/// Everything nginx writes goes under `dir`. One process, no master: killing it
/// on drop leaves no worker behind (a killed master orphans its workers, which
/// keep the port), and nothing switches to another user (as root, workers would
/// become `nobody`, who cannot enter the temp dir).
fn config(dir: &Path, port: u16, upstream: &str) -> String {
    let dir = dir.display();
    format!(
        "master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format connections '$connection $connection_requests';
    access_log {dir}/access.log connections;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
        }}
    }}
}}
"
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
