//! A turn run again after a conflict gets the answers its first run got, for
//! the same requests, instead of sending them again (issue 28, "model calls
//! journaled per turn"); a request that differs goes out
//! (`cargo test -p agent-host-tests --test journal`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agent_host::host::DEFAULT_ROOT;
use agent_host::keys::{Name, Namespace};
use agent_host::{AllowedOrigin, Host, Limits, PluginConfig, TurnError, TurnOptions};
use agent_host_tests::{Backend, load, plugins};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use tokio::sync::{Notify, Semaphore};

/// A server whose first answer waits until the test lets it go, so a turn can be
/// kept between its model call and its commit.
struct Held {
    origin: String,
    /// Requests received.
    received: Arc<AtomicU64>,
    /// Signalled when the first request arrived.
    arrived: Arc<Notify>,
    /// One permit lets the first answer go.
    release: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    received: Arc<AtomicU64>,
    arrived: Arc<Notify>,
    release: Arc<Semaphore>,
}

async fn answer(State(shared): State<Shared>, body: Bytes) -> String {
    let n = shared.received.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        shared.arrived.notify_one();
        let _ = shared.release.acquire().await.map(|p| p.forget());
    }
    format!("answer {n} to {} bytes", body.len())
}

impl Held {
    async fn start() -> Self {
        let shared = Shared {
            received: Arc::default(),
            arrived: Arc::default(),
            release: Arc::new(Semaphore::new(0)),
        };
        let router = Router::new()
            .route("/model", post(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            origin,
            received: shared.received,
            arrived: shared.arrived,
            release: shared.release,
            task,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `mode` (a hostile plugin mode that loads, POSTs, saves) on session `s`
/// while another turn changes `s` between its model call and its commit: the
/// first turn conflicts and runs again. Returns its answer and the requests the
/// server got.
async fn conflicted(backend: Backend, mode: &str) -> (String, u64) {
    // Turns of one session do not wait for each other here: the second one
    // commits while the first is held at its model.
    let host = Host::builder()
        .shared_store(backend.store())
        .serialize_sessions(false)
        .build()
        .unwrap();
    let server = Held::start().await;
    let config = PluginConfig::new("p", "tenant-a")
        .with_origin(AllowedOrigin::parse(&server.origin).unwrap());
    load(&host, config, plugins::HOSTILE).await;
    let first = {
        let host = host.clone();
        let input = format!("{mode} 10 {}/model", server.origin);
        tokio::spawn(async move { host.run_turn("p", "s", &input).await })
    };
    server.arrived.notified().await;
    // The session changes under the held turn.
    let other = format!("post-save 5 {}/model", server.origin);
    host.run_turn("p", "s", &other).await.unwrap();
    server.release.add_permits(1);
    let answer = first.await.unwrap().unwrap();
    (answer, server.received.load(Ordering::SeqCst))
}

/// The same request in the second run: answered from the journal.
async fn a_conflicted_turn_does_not_call_its_model_twice(backend: Backend) {
    let (answer, received) = conflicted(backend, "post-save").await;
    assert_eq!(answer, "200 answer 1 to 10 bytes", "the first run's answer");
    assert_eq!(
        received, 2,
        "one request by the turn, one by the other turn"
    );
}

/// A request that depends on what changed (its body has the version read): it
/// differs in the second run and goes out.
async fn a_different_request_goes_out(backend: Backend) {
    let (answer, received) = conflicted(backend, "post-save-versioned").await;
    assert_eq!(
        answer, "200 answer 3 to 11 bytes",
        "a new answer to the new request (version 1 read)"
    );
    assert_eq!(received, 3);
}

/// A turn with an idempotency key that got its model's answer, then ran out of
/// time (held at a second server): its retry with the key, on another host,
/// replays the kept answer instead of paying the model again, and commits; the
/// kept journal is dropped.
async fn a_keyed_retry_after_a_crash_replays_the_kept_answer(backend: Backend) {
    let (model, gate) = (Held::start().await, Held::start().await);
    // The model answers at once; the gate holds its first request for good.
    model.release.add_permits(1);
    let mut limits = Limits::default();
    limits.deadline = std::time::Duration::from_secs(1);
    let config = PluginConfig::new("p", "tenant-a")
        .with_limits(limits)
        .with_origin(AllowedOrigin::parse(&model.origin).unwrap())
        .with_origin(AllowedOrigin::parse(&gate.origin).unwrap());
    let hosts = [backend.host(), backend.host()];
    for host in &hosts {
        load(host, config.clone(), plugins::HOSTILE).await;
    }
    let input = format!(
        "post-then-hold 10 {0}/model {1}/model",
        model.origin, gate.origin
    );
    let keyed = || TurnOptions::idempotency_key("order-7");
    let first = hosts[0].run_turn_with("p", "s", &input, keyed()).await;
    assert!(
        matches!(first, Err(TurnError::Deadline { .. })),
        "{first:?}"
    );
    assert_eq!(model.received.load(Ordering::SeqCst), 1);
    let retried = hosts[1]
        .run_turn_with("p", "s", &input, keyed())
        .await
        .unwrap();
    assert_eq!(retried.output, "200 answer 1 to 10 bytes");
    assert!(
        !retried.replayed,
        "the plugin ran again, with the kept answer"
    );
    assert_eq!(
        model.received.load(Ordering::SeqCst),
        1,
        "the model was paid twice"
    );
    assert_eq!(gate.received.load(Ordering::SeqCst), 2);
    let ns = Namespace::new(DEFAULT_ROOT, "tenant-a").unwrap();
    let session = Name::session("s").unwrap();
    let id = "journal:".to_owned() + &hex_digest("order-7");
    let gone = agent_host_tests::eventually(std::time::Duration::from_secs(5), || async {
        let kept = backend
            .store()
            .read_events(&ns, &session, &id, 0)
            .await
            .unwrap();
        kept.is_empty()
    })
    .await;
    assert!(gone, "the kept journal outlived its committed turn");
}

/// The first 16 bytes of the SHA-256 of `key`, in hex (the kept journal's id).
fn hex_digest(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$test(Backend::redis()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$test(Backend::embedded()).await;
                }
            }
        )*
    };
}

on_every_store!(
    a_conflicted_turn_does_not_call_its_model_twice,
    a_different_request_goes_out,
);

agent_host_tests::conformance!(a_keyed_retry_after_a_crash_replays_the_kept_answer);
