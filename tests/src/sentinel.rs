//! A Sentinel-managed set on loopback: a primary, two replicas and three sentinels,
//! each a real `redis-server` process in its own temp dir, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::RedisServer;
use crate::redis_server::{free_port, wait_for_log_line};

/// The name the sentinels know the primary by.
pub const SERVICE: &str = "agent-primary";

/// A running primary, its replicas and three sentinels.
pub struct SentinelSet {
    /// The primary at start.
    pub primary: RedisServer,
    /// Its replicas.
    pub replicas: Vec<RedisServer>,
    sentinels: Vec<Sentinel>,
}

struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SentinelSet {
    /// Starts the set and waits until both replicas are in sync and every sentinel
    /// monitors the primary.
    pub async fn start() -> Self {
        let primary = RedisServer::start();
        let port = primary.port().to_string();
        let replicas: Vec<RedisServer> = (0..2)
            .map(|_| RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]))
            .collect();
        for replica in &replicas {
            let conn = replica.conn().await;
            let synced = crate::eventually(Duration::from_secs(20), || {
                let mut conn = conn.clone();
                async move {
                    let info: String = redis::cmd("INFO")
                        .arg("replication")
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default();
                    info.contains("master_link_status:up")
                }
            })
            .await;
            assert!(synced, "a replica did not sync with the primary in 20 s");
        }
        let sentinels = (0..3).map(|_| Sentinel::start(primary.port())).collect();
        Self {
            primary,
            replicas,
            sentinels,
        }
    }

    /// `redis+sentinel://` with the three sentinels and the service name.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// Asks a sentinel which port the primary is on now.
    pub async fn primary_port(&self) -> Option<u16> {
        let url = format!("redis://127.0.0.1:{}", self.sentinels[0].port);
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SERVICE)
            .query_async(&mut conn)
            .await
            .ok()?;
        addr.get(1)?.parse().ok()
    }
}

impl Sentinel {
    fn start(primary_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {SERVICE} 500\n\
                 sentinel failover-timeout {SERVICE} 5000\n\
                 sentinel parallel-syncs {SERVICE} 2\n",
                dir = dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let mut child = Command::new("redis-server")
            .arg(&config)
            .args(["--sentinel", "--logfile", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel runs (apt-get install -y redis-server)");
        if let Err(e) = wait_for_log_line(&mut child, "+monitor master", Duration::from_secs(20)) {
            panic!("sentinel did not start monitoring: {e}");
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}
