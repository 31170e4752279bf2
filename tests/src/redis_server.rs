//! A real `redis-server` on a free loopback port, in its own temp dir, killed on
//! drop.
//!
//! Written here rather than taken from `redis-test` because the fault tests need to
//! kill a server and start it again on the same port and data dir (with its AOF), and
//! to wait for readiness on the server's own "Ready to accept connections" line
//! instead of polling.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

/// How long a server may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    args: Vec<String>,
    password: Option<String>,
    tls: Option<TlsFiles>,
}

/// The PEM files of a TLS test server, in its temp dir: a CA made for the server,
/// the server's certificate for `127.0.0.1` and `localhost`, and a client
/// certificate from the same CA.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA's certificate.
    pub ca: PathBuf,
    /// A client certificate the server accepts.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl RedisServer {
    /// A server with no persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments (e.g. `["--appendonly", "yes"]`).
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), args, None)
    }

    /// A server that speaks only TLS (`--tls-port`, no plain port) and requires a
    /// client certificate, with certificates made for this test (see [`TlsFiles`]).
    pub fn start_tls() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = crate::tls::TestCa::new("agent-host test CA");
        let files = TlsFiles {
            ca: dir.path().join("ca.pem"),
            client_cert: dir.path().join("client.pem"),
            client_key: dir.path().join("client.key"),
            server_cert: dir.path().join("server.pem"),
            server_key: dir.path().join("server.key"),
        };
        ca.write_cert(&files.ca);
        ca.write_leaf(
            &["127.0.0.1", "localhost"],
            &files.server_cert,
            &files.server_key,
        );
        ca.write_leaf(
            &["agent-host client"],
            &files.client_cert,
            &files.client_key,
        );
        Self::start_in(dir, &[], Some(files))
    }

    fn start_in(dir: TempDir, args: &[&str], tls: Option<TlsFiles>) -> Self {
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            password: None,
            tls,
        };
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                // Another process took the port between our probe and the bind.
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// A server that requires `password` for the default user.
    pub fn start_with_password(password: &str) -> Self {
        let mut server = Self::start_with(&["--requirepass", password]);
        server.password = Some(password.to_string());
        server
    }

    /// `redis://127.0.0.1:PORT` (with the password, if any), or `rediss://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.password {
            Some(p) => format!("{scheme}://:{p}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// The TLS files of a [`RedisServer::start_tls`] server.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A raw connection, for looking at keys behind the host's back.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let client = match &self.tls {
            None => redis::Client::open(self.url()),
            Some(files) => {
                let read = |p: &PathBuf| std::fs::read(p).expect("TLS file");
                let _ = rustls::crypto::ring::default_provider().install_default();
                redis::Client::build_with_tls(
                    self.url(),
                    redis::TlsCertificates {
                        client_tls: Some(redis::ClientTlsConfig {
                            client_cert: read(&files.client_cert),
                            client_key: read(&files.client_key),
                        }),
                        root_cert: Some(read(&files.ca)),
                    },
                )
            }
        };
        client
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection to the test server")
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data dir.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn()
            .unwrap_or_else(|e| panic!("redis-server did not restart: {e}"));
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.arg("--port").arg(self.port.to_string()),
            Some(files) => cmd
                .args(["--port", "0", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(&files.server_cert)
                .arg("--tls-key-file")
                .arg(&files.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca)
                .args(["--tls-auth-clients", "yes"]),
        };
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--logfile", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: run `apt-get install -y redis-server` \
                 (tests/run.sh does it for you)"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        wait_for_log_line(&mut child, "Ready to accept connections", START_TIMEOUT)?;
        self.child = Some(child);
        Ok(())
    }
}

/// Waits until `child` (a `redis-server` with its log on a piped stdout) prints a
/// line containing `needle`. If it exits first or takes longer than `timeout`, it is
/// reaped (killed first if need be) and the error holds its log.
pub(crate) fn wait_for_log_line(
    child: &mut Child,
    needle: &'static str,
    timeout: Duration,
) -> Result<(), String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Reads the log until the server exits; the pipe must keep draining.
    std::thread::spawn(move || {
        let mut log = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(needle) {
                let _ = tx.send(Ok(()));
            }
            log.push(line);
        }
        let _ = tx.send(Err(log.join("\n")));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(log)) => {
            let _ = child.wait();
            Err(format!("redis-server exited:\n{log}"))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "redis-server did not log {needle:?} within {timeout:?}"
            ))
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
