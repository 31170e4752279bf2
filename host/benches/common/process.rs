//! Server processes under measure: started, waited for, read from `/proc`
//! (CPU, resident memory), killed on drop; and their Redis's CPU.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agent_host_tests::RedisServer;

/// A server process that printed `listening on http://ADDR`, killed on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Runs `command` with its stderr in `log`, and waits for its `listening on`
    /// line (reading its stdout, not polling the port).
    pub fn spawn(mut command: Command, log: &Path) -> Self {
        let stderr = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("listening on http://")?.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{:?} did not start; its log ({}):\n{}",
                command.get_program(),
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        // Keep reading, so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            addr,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Panics with the server's log if it has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the server exited ({status}); its log ({}):\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pid` and its children (a server started with workers is a supervisor and
/// its worker processes).
fn tree(pid: u32) -> Vec<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
    let mut all = vec![pid];
    all.extend(
        children
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok()),
    );
    all
}

/// User + system CPU of process `pid` and its children so far.
pub fn cpu(pid: u32) -> Duration {
    tree(pid).into_iter().map(cpu_of).sum()
}

/// Resident memory of process `pid` and its children.
pub fn memory(pid: u32) -> Memory {
    tree(pid)
        .into_iter()
        .map(memory_of)
        .fold(Memory::default(), Memory::add)
}

/// Resident memory in KiB, two ways.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Every page mapped counts whole in each mapping (`Rss`): a page of a
    /// component's memory image, shared by every instance of it, counts once per
    /// instance.
    pub rss: u64,
    /// A page shared by n mappings counts 1/n in each (`Pss`): what the process
    /// adds to the machine's memory.
    pub pss: u64,
}

impl Memory {
    fn add(self, other: Memory) -> Memory {
        Memory {
            rss: self.rss + other.rss,
            pss: self.pss + other.pss,
        }
    }

    fn max(self, other: Memory) -> Memory {
        Memory {
            rss: self.rss.max(other.rss),
            pss: self.pss.max(other.pss),
        }
    }
}

/// User + system CPU of process `pid` so far (`/proc/PID/stat` fields 14 and 15,
/// in clock ticks of 10 ms: Linux's USER_HZ is 100).
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("process {pid} is gone (/proc/{pid}/stat: {e})"));
    // The command name, in parentheses, may hold spaces: count after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the line are 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Resident memory of process `pid` (`/proc/PID/smaps_rollup`; 0 once it is gone).
fn memory_of(pid: u32) -> Memory {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("Rss:"),
        pss: field("Pss:"),
    }
}

/// The highest resident memory of a process (each way on its own), sampled every
/// 100 ms until stopped.
pub struct MemoryPeak {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Memory>,
}

impl MemoryPeak {
    pub fn start(pid: u32) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = Memory::default();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                peak = peak.max(memory(pid));
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break peak.max(memory(pid)),
                }
            }
        });
        Self { stop, task }
    }

    /// The peaks.
    pub async fn stop(self) -> Memory {
        let _ = self.stop.send(());
        self.task.await.expect("the memory sampler panicked")
    }
}

/// `used_cpu_user` + `used_cpu_sys` of `redis`'s `INFO cpu`.
pub async fn redis_cpu(redis: &RedisServer) -> Duration {
    let mut conn = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("INFO cpu: {e}"));
    let seconds: f64 = info
        .lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_user:")
                .or_else(|| l.strip_prefix("used_cpu_sys:"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum();
    Duration::from_secs_f64(seconds)
}

/// Raises this process's soft limit of open files to its hard limit when it is
/// below `needed` (with `prlimit`, which needs no unsafe code); the servers started
/// afterwards inherit it. Says so when even the hard limit is too low.
pub fn raise_open_files(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some((soft, hard)) = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| {
            let mut numbers = rest.split_whitespace();
            let mut next = || numbers.next().and_then(|n| n.parse::<u64>().ok());
            Some((next()?, next().unwrap_or(u64::MAX)))
        })
    else {
        return;
    };
    if soft >= needed {
        return;
    }
    if hard > soft {
        let pid = std::process::id().to_string();
        let limit = format!("--nofile={hard}:{hard}");
        let raised = Command::new("prlimit")
            .args(["--pid", &pid, &limit])
            .status()
            .is_ok_and(|s| s.success());
        if raised && hard >= needed {
            return;
        }
    }
    eprintln!(
        "warning: open files are limited to {soft} (hard {hard}) and this run needs about \
         {needed}: raise them (ulimit -n) or expect connection errors"
    );
}
