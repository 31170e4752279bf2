//! Test plugin: does what a hostile plugin would do to the host, as `input` says
//! (`MODE [N]`):
//! - `grow N`: asks for more memory N times (each refused), then answers.
//! - `grow-then-spin`: one refused memory growth, then an endless loop.
//! - `refused-appends N`: N appends the host refuses (too many items per call).
//! - `answer N` / `error N`: an answer / an error text of N bytes.
//! - `forge`: an error text and stderr lines made to look like the host's log.
//! - `append-many N`: appends N history items in calls of at most 1,000.
//! - `load-save-spin MS`: reads and writes the session, then works for MS ms.
//! - `fetch URL`: a GET with its own `Authorization` header, following one
//!   redirect as a client would; answers `STATUS BODY` or the error.
//! - `fetch-n N URL`: N GETs; answers the outcome of each.
//! - `post N URL`: a POST with a body of N bytes.
//! - `send METHOD URL`: a request with that method and no body; answers `STATUS
//!   BODY` (the body is what an echoing server sent back) or the error.
//! - `post-then-hold N MODEL GATE`: a POST of N bytes to MODEL, then a chat
//!   request whose message is `hold` to GATE (a server that holds it until
//!   released), then saves and answers what MODEL said: a turn that can be kept in
//!   flight after its model answered.
//! - `env NAME`: the plugin's environment variable NAME, or `unset`.
//! - `globals`: what this instance's statics held before the turn changed them:
//!   a zeroed counter and one set to 7 (answers `1 8` in a fresh instance) and
//!   how many bytes of a zeroed 1 MiB array were not zero (`0`).
//!
//! Its `describe` answers a name with a newline and an ANSI escape and a 1 MB version.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use agent_sdk::http;
use agent_sdk::raw::agent::state::agent_state as wit;
use agent_sdk::raw::exports::agent::state::handler::{Guest, Info};

struct Hostile;

/// Looks like the host's own log line when printed raw.
const FORGED: &str = "boom\n2026-01-01T00:00:00.000000Z ERROR agent_host: thread 'main' panicked at host/src/host.rs:1:1\x1b[31m";

static ZEROED: AtomicU32 = AtomicU32::new(0);
static SET: AtomicU32 = AtomicU32::new(7);
static PAGES: [AtomicU8; 1 << 20] = [const { AtomicU8::new(0) }; 1 << 20];

fn globals() -> String {
    let dirty = PAGES
        .iter()
        .filter(|b| b.swap(0xAB, Ordering::Relaxed) != 0)
        .count();
    let zeroed = ZEROED.fetch_add(1, Ordering::Relaxed) + 1;
    let set = SET.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{zeroed} {set} {dirty}")
}

fn arg(rest: Option<&str>) -> u64 {
    rest.and_then(|n| n.parse().ok()).unwrap_or(1)
}

/// Asks for 64 Ki pages (4 GiB) more than now: always refused, never fatal.
fn grow_memory() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_grow(0, 65535);
    #[cfg(not(target_arch = "wasm32"))]
    usize::MAX
}

impl Guest for Hostile {
    fn describe() -> Info {
        Info {
            name: "hostile\nERROR agent_host: forged\x1b[2J".into(),
            version: "9".repeat(1 << 20),
        }
    }

    fn handle(session: String, input: String) -> Result<String, String> {
        let mut words = input.splitn(3, ' ');
        let mode = words.next().unwrap_or_default();
        let rest = words.next();
        match mode {
            "grow" => {
                let mut refused = 0;
                for _ in 0..arg(rest) {
                    if grow_memory() == usize::MAX {
                        refused += 1;
                    }
                }
                Ok(format!("{refused} refused"))
            }
            "grow-then-spin" => {
                grow_memory();
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "refused-appends" => {
                // One item more than an append may carry (1,000 by default).
                let items = vec![b"x".to_vec(); 1001];
                let mut refused = 0;
                for _ in 0..arg(rest) {
                    if wit::append(&session, &items).is_err() {
                        refused += 1;
                    }
                }
                Ok(format!("{refused} refused"))
            }
            "answer" => Ok("a".repeat(arg(rest) as usize)),
            "error" => Err("e".repeat(arg(rest) as usize)),
            "forge" => {
                eprintln!("{FORGED}");
                eprintln!("stderr line two\r\x1b[1K");
                Err(FORGED.into())
            }
            "append-many" => {
                let mut left = arg(rest);
                let mut len = 0;
                while left > 0 {
                    let n = left.min(1000);
                    let items: Vec<Vec<u8>> =
                        (0..n).map(|i| format!("item {i}").into_bytes()).collect();
                    len = wit::append(&session, &items).map_err(|e| format!("{e:?}"))?;
                    left -= n;
                }
                Ok(len.to_string())
            }
            "load-save-spin" => {
                let version = wit::load(&session)
                    .map_err(|e| format!("{e:?}"))?
                    .map_or(0, |e| e.version);
                let options = wit::SaveOptions {
                    ttl_seconds: None,
                    if_version: None,
                };
                wit::save(&session, version.to_string().as_bytes(), options)
                    .map_err(|e| format!("{e:?}"))?;
                let started = Instant::now();
                while started.elapsed() < Duration::from_millis(arg(rest)) {
                    std::hint::spin_loop();
                }
                Ok("saved".into())
            }
            "fetch" => Ok(fetch(rest.unwrap_or_default())),
            "fetch-n" => {
                let url = input.splitn(3, ' ').nth(2).unwrap_or_default();
                let outcomes: Vec<String> = (0..arg(rest)).map(|_| fetch(url)).collect();
                Ok(outcomes.join("\n"))
            }
            "post" => {
                let url = input.splitn(3, ' ').nth(2).unwrap_or_default();
                let body = vec![b'x'; arg(rest) as usize];
                match http::send("POST", url, &[], body) {
                    Ok(r) => Ok(format!("{} {}", r.status(), r.text().unwrap_or_default())),
                    Err(e) => Ok(format!("error: {e}")),
                }
            }
            "send" => {
                let url = input.splitn(3, ' ').nth(2).unwrap_or_default();
                match http::send(rest.unwrap_or_default(), url, &[], Vec::new()) {
                    Ok(r) => Ok(format!("{} {}", r.status(), r.text().unwrap_or_default())),
                    Err(e) => Ok(format!("error: {e}")),
                }
            }
            "post-save" | "post-save-versioned" => {
                // Reads the session, POSTs N bytes (N + the version read, when
                // versioned) to the URL, then saves: a turn whose session changed
                // meanwhile conflicts and runs again.
                let version = wit::load(&session)
                    .map_err(|e| format!("{e:?}"))?
                    .map_or(0, |e| e.version);
                let url = input.splitn(3, ' ').nth(2).unwrap_or_default();
                let extra = if mode == "post-save" { 0 } else { version };
                let body = vec![b'x'; (arg(rest) + extra) as usize];
                let said = match http::send("POST", url, &[], body) {
                    Ok(r) => format!("{} {}", r.status(), r.text().unwrap_or_default()),
                    Err(e) => format!("error: {e}"),
                };
                let options = wit::SaveOptions {
                    ttl_seconds: None,
                    if_version: None,
                };
                wit::save(&session, said.as_bytes(), options).map_err(|e| format!("{e:?}"))?;
                Ok(said)
            }
            "post-then-hold" => {
                let mut urls = input.splitn(4, ' ').skip(2);
                let (model, gate) = (
                    urls.next().unwrap_or_default(),
                    urls.next().unwrap_or_default(),
                );
                let body = vec![b'x'; arg(rest) as usize];
                let said = match http::send("POST", model, &[], body) {
                    Ok(r) => format!("{} {}", r.status(), r.text().unwrap_or_default()),
                    Err(e) => format!("error: {e}"),
                };
                let hold = br#"{"messages":[{"role":"user","content":"hold"}]}"#.to_vec();
                let json = [("content-type", "application/json")];
                http::send("POST", gate, &json, hold).map_err(|e| format!("gate: {e}"))?;
                let options = wit::SaveOptions {
                    ttl_seconds: None,
                    if_version: None,
                };
                wit::save(&session, said.as_bytes(), options).map_err(|e| format!("{e:?}"))?;
                Ok(said)
            }
            "env" => Ok(std::env::var(rest.unwrap_or_default()).unwrap_or_else(|_| "unset".into())),
            "globals" => Ok(globals()),
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

/// A GET that tries to set its own credentials; follows one redirect.
fn fetch(url: &str) -> String {
    let headers = [
        ("authorization", "Bearer made-up-by-the-plugin"),
        ("x-plugin", "1"),
    ];
    let mut url = url.to_string();
    for _ in 0..2 {
        match http::send("GET", &url, &headers, Vec::new()) {
            Ok(r) if (300..400).contains(&r.status()) && r.header("location").is_some() => {
                url = r.header("location").unwrap_or_default().to_string();
            }
            Ok(r) => return format!("{} {}", r.status(), r.text().unwrap_or_default()),
            Err(e) => return format!("error: {e}"),
        }
    }
    "error: too many redirects".into()
}

agent_sdk::raw::__export_world!(Hostile with_types_in agent_sdk::raw);
