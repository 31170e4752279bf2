//! A real Redis Cluster on loopback: three primaries (`redis-server
//! --cluster-enabled yes`, each in its own temp dir, with an fsynced AOF), joined by
//! `redis-cli --cluster create`, killed on drop.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::RedisServer;

/// A running three-primary cluster.
pub struct RedisCluster {
    /// Its nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
            })
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs (apt-get install -y redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Restarts every node on its data (AOF and nodes.conf) and waits for the
    /// cluster to be whole again.
    pub fn restart(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        for node in &mut self.nodes {
            node.restart();
        }
        self.wait_ok();
    }

    /// Moves `slots` hash slots from the first node to the second with `redis-cli
    /// --cluster reshard` (keys migrate while clients keep working).
    pub fn reshard(&self, slots: u32) -> std::process::Output {
        let from = self.node_id(0);
        let to = self.node_id(1);
        Command::new("redis-cli")
            .args(["--cluster", "reshard"])
            .arg(format!("127.0.0.1:{}", self.nodes[0].port()))
            .args(["--cluster-from", &from, "--cluster-to", &to])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli runs")
    }

    fn node_id(&self, i: usize) -> String {
        let mut conn = sync_conn(&self.nodes[i]);
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut conn)
            .expect("CLUSTER MYID")
    }

    /// Polls (bounded) until every node says the cluster is ok.
    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut sync_conn(node))
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster is not ok after 30 s:\n{info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn sync_conn(node: &RedisServer) -> redis::Connection {
    redis::Client::open(node.url())
        .and_then(|c| c.get_connection())
        .expect("connection to a cluster node")
}
