//! Outbound HTTP from plugins, against a real HTTP server on loopback: the llm-chat
//! example's conversation, the allow-list, secret headers, limits and deadlines
//! (`cargo test --test outbound`). The serve side (config shape, metrics, logs) is
//! in `host/tests/outbound_serve.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_host::{AllowedOrigin, Host, Limits, PluginConfig, SecretHeader, TurnError};
use agent_host_tests::model_server::{Mode, ModelServer};
use agent_host_tests::{Backend, conformance, load, plugins};

const SECRET: &str = "sk-test-the-plugin-never-sees-this";

fn origin(server: &ModelServer) -> AllowedOrigin {
    AllowedOrigin::parse(&server.origin())
        .unwrap()
        .with_secret_header(
            SecretHeader::new("Authorization", &format!("Bearer {SECRET}")).unwrap(),
        )
        .unwrap()
}

async fn llm_chat(host: &Host, server: &ModelServer, limits: Limits) {
    chat_plugin(host, server, limits, plugins::LLM_CHAT).await;
}

async fn chat_plugin(host: &Host, server: &ModelServer, limits: Limits, wasm: &str) {
    let config = PluginConfig::new("llm", "tenant-a")
        .with_limits(limits)
        .with_env(vec![
            ("MODEL_URL".into(), format!("{}/v1", server.origin())),
            ("MODEL".into(), "small".into()),
        ])
        .with_origin(origin(server));
    load(host, config, wasm).await;
}

/// Each outbound request's origin and outcome, as the host reported them.
type Outcomes = Arc<Mutex<Vec<(String, &'static str)>>>;

/// A host on `backend` that keeps its outbound requests' outcomes.
fn observed_host(backend: &Backend) -> (Host, Outcomes) {
    let outcomes = Outcomes::default();
    let seen = outcomes.clone();
    let host = Host::builder()
        .shared_store(backend.store())
        .on_outbound(move |e| seen.lock().unwrap().push((e.origin.clone(), e.outcome)))
        .build()
        .unwrap();
    (host, outcomes)
}

async fn hostile(host: &Host, config: PluginConfig) {
    load(host, config, plugins::HOSTILE).await;
}

/// The example's conversation: the model sees the history, the host's key
/// arrives, both sides are stored; a failing model stores nothing. (The same
/// agent in every language: `tests/tests/languages.rs`.)
async fn the_llm_chat_example_talks_to_its_model(backend: Backend) {
    conversation(&backend, plugins::LLM_CHAT).await;
}

async fn conversation(backend: &Backend, wasm: &str) {
    let host = backend.host();
    let server = ModelServer::start().await;
    chat_plugin(&host, &server, Limits::default(), wasm).await;
    let first = host
        .run_turn("llm", "alice", "I bake sourdough.")
        .await
        .unwrap();
    assert_eq!(first, r#"You said "I bake sourdough."; I saw 2 messages."#);
    let second = host.run_turn("llm", "alice", "Which flour?").await.unwrap();
    assert_eq!(second, r#"You said "Which flour?"; I saw 4 messages."#);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let sent = requests[1].json();
    assert_eq!(sent["model"], "small");
    assert_eq!(sent["messages"][1]["content"], "I bake sourdough.");
    assert_eq!(sent["messages"][2]["content"], first);
    assert_eq!(sent["messages"][3]["content"], "Which flour?");
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
        assert_eq!(r.path, "/v1/chat/completions");
    }
    assert_eq!(host.inspect("llm", "alice").await.unwrap().history_len, 4);

    server.set_mode(Mode::Fail);
    let e = host
        .run_turn("llm", "alice", "Still there?")
        .await
        .unwrap_err();
    assert!(matches!(e, TurnError::Plugin { .. }), "{e}");
    assert!(e.to_string().contains("the model is unavailable"), "{e}");
    assert_eq!(host.inspect("llm", "alice").await.unwrap().history_len, 4);
}

/// The plugin cannot see the secret header nor replace it; it sees only the env
/// it was given.
async fn secret_headers_are_the_hosts(backend: Backend) {
    let host = backend.host();
    let server = ModelServer::start().await;
    let config = PluginConfig::new("h", "tenant-a")
        .with_env(vec![("MODEL".into(), "small".into())])
        .with_origin(origin(&server));
    hostile(&host, config).await;
    let answer = host
        .run_turn("h", "s", &format!("fetch {}/hello", server.origin()))
        .await
        .unwrap();
    assert!(
        answer.starts_with("200 hello from the test server"),
        "{answer}"
    );
    let got = &server.requests()[0];
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(
        got.header("x-plugin"),
        Some("1"),
        "the plugin's other headers pass"
    );
    assert_eq!(host.run_turn("h", "s", "env MODEL").await.unwrap(), "small");
    for name in ["LLM_API_KEY", "HOME", "PATH", "Authorization"] {
        assert_eq!(
            host.run_turn("h", "s", &format!("env {name}"))
                .await
                .unwrap(),
            "unset"
        );
    }
}

/// Requests to anything not allowed are refused before any connection: another
/// origin, another port of the allowed host, a redirect elsewhere, and a name that
/// resolves to a loopback address.
async fn only_allowed_origins_are_reached(backend: Backend) {
    let host = backend.host();
    let allowed = ModelServer::start().await;
    let other = ModelServer::start().await;
    let name = machine_name_resolving_to_loopback().await;
    let config = PluginConfig::new("h", "tenant-a")
        .with_origin(origin(&allowed))
        .with_origin(AllowedOrigin::parse(&format!("http://{name}:{}", other.port())).unwrap());
    hostile(&host, config).await;
    let cases = [
        format!("{}/x", other.origin()),
        format!("http://localhost:{}/x", allowed.port()),
        format!("http://127.0.0.1:{}/x", other.port()),
        format!("https://127.0.0.1:{}/x", allowed.port()),
        format!("http://{name}:{}/x", other.port()),
    ];
    for url in &cases {
        let answer = host
            .run_turn("h", "s", &format!("fetch {url}"))
            .await
            .unwrap();
        assert!(answer.starts_with("error:"), "{url}: {answer}");
        assert!(
            answer.contains("HttpRequestDenied") || answer.contains("DestinationIpProhibited"),
            "{url}: {answer}"
        );
    }
    assert_eq!(
        other.requests().len(),
        0,
        "a refused request reached the server"
    );
    // A redirect from the allowed server to the other one: followed by the plugin,
    // refused by the host.
    let url = format!("{}/redirect?to={}/x", allowed.origin(), other.origin());
    let answer = host
        .run_turn("h", "s", &format!("fetch {url}"))
        .await
        .unwrap();
    assert!(answer.contains("HttpRequestDenied"), "{answer}");
    assert_eq!(allowed.requests().len(), 1);
    assert_eq!(other.requests().len(), 0);
    // Without any origin, nothing at all.
    hostile(&host, PluginConfig::new("none", "tenant-a")).await;
    let answer = host
        .run_turn("none", "s", &format!("fetch {}/x", allowed.origin()))
        .await
        .unwrap();
    assert!(answer.contains("HttpRequestDenied"), "{answer}");
    assert_eq!(allowed.requests().len(), 1);
}

/// TRACE (the server would send the request back, the host's key with it),
/// CONNECT, and a URL with user information (which would go out as `Host:
/// allowed@127.0.0.1:PORT`) are refused before any connection, even to an
/// allowed origin, and counted as denials like an origin not listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_connect_and_userinfo_are_refused_before_any_connection() {
    let backend = Backend::embedded();
    let (host, outcomes) = observed_host(&backend);
    let server = ModelServer::start().await;
    hostile(
        &host,
        PluginConfig::new("h", "tenant-a").with_origin(origin(&server)),
    )
    .await;
    let url = format!("{}/x", server.origin());
    let cases = [
        format!("send TRACE {url}"),
        format!("send trace {url}"),
        format!("send CONNECT {url}"),
        format!("fetch http://allowed@127.0.0.1:{}/x", server.port()),
    ];
    for input in &cases {
        let answer = host.run_turn("h", "s", input).await.unwrap();
        assert!(
            answer.starts_with("error:") && answer.contains("HttpRequestDenied"),
            "{input}: {answer}"
        );
        assert!(!answer.contains(SECRET), "{input}: {answer}");
    }
    assert_eq!(
        server.requests().len(),
        0,
        "a refused request reached the server: {:?}",
        server.requests()
    );
    let denied = vec![(server.origin(), "denied"); cases.len()];
    assert_eq!(*outcomes.lock().unwrap(), denied);
    // The same plugin's GET to the same origin goes out, with the key.
    let answer = host
        .run_turn("h", "s", &format!("send GET {url}"))
        .await
        .unwrap();
    assert!(answer.starts_with("200 hello"), "{answer}");
    let got = server.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(
        got[0].header("host"),
        Some(&server.origin()["http://".len()..])
    );
    // A method of the plugin's own goes out as it was written (methods are
    // case-sensitive).
    let answer = host
        .run_turn("h", "s", &format!("send Purge {url}"))
        .await
        .unwrap();
    assert!(answer.starts_with("200"), "{answer}");
    assert_eq!(server.requests()[1].method, "Purge");
}

/// A request is counted once its response's body is done with, by how the body
/// ended: read whole is `ok`, cut at `max_response_bytes` is `limit`, stalled
/// past the between-bytes timeout is `timeout` (a response head arrived each
/// time: before, all three were `ok`). The stall is Python's `http.server`
/// sending 2 KiB of a body and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_counted_by_how_its_body_ended() {
    let backend = Backend::embedded();
    let (host, outcomes) = observed_host(&backend);
    let server = ModelServer::start().await;
    let stalling = agent_host_tests::python_model::PythonModel::failing_endlessly();
    let mut limits = Limits::default();
    limits.max_response_bytes = 10_000;
    limits.first_byte_timeout = Duration::from_millis(300);
    let config = PluginConfig::new("h", "tenant-a")
        .with_limits(limits)
        .with_origin(origin(&server))
        .with_origin(AllowedOrigin::parse(&stalling.origin()).unwrap());
    hostile(&host, config).await;

    let url = format!("{}/x", server.origin());
    let answer = host
        .run_turn("h", "s", &format!("fetch {url}"))
        .await
        .unwrap();
    assert!(answer.starts_with("200"), "{answer}");
    server.set_mode(Mode::Huge(20_000));
    let answer = host
        .run_turn("h", "s", &format!("fetch {url}"))
        .await
        .unwrap();
    assert!(answer.contains("body size"), "{answer}");
    let stalled = format!("{}/v1/chat/completions", stalling.origin());
    let answer = host
        .run_turn("h", "s", &format!("post 10 {stalled}"))
        .await
        .unwrap();
    assert!(answer.contains("connection read timeout"), "{answer}");
    let outcomes: Vec<&str> = outcomes.lock().unwrap().iter().map(|(_, o)| *o).collect();
    assert_eq!(outcomes, ["ok", "limit", "timeout"]);
}

/// A name of this machine that the system resolver maps to a loopback address
/// (Debian's /etc/hosts maps the host name so).
async fn machine_name_resolving_to_loopback() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    let resolved: Vec<_> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .map(|a| a.collect())
        .unwrap_or_default();
    assert!(
        !name.is_empty()
            && !resolved.is_empty()
            && resolved
                .iter()
                .all(|a: &std::net::SocketAddr| a.ip().is_loopback()),
        "this test needs the machine's host name ({name:?}) to resolve to a loopback \
         address (got {resolved:?}); add `127.0.1.1 {name}` to /etc/hosts"
    );
    name
}

/// Every limit: requests per turn, response bytes, request body bytes, the
/// first-byte timeout.
async fn outbound_limits_hold(backend: Backend) {
    let host = backend.host();
    let server = ModelServer::start().await;
    let mut limits = Limits::default();
    limits.max_requests = 2;
    limits.max_response_bytes = 10_000;
    limits.max_request_body_bytes = 1000;
    limits.first_byte_timeout = Duration::from_millis(300);
    let config = PluginConfig::new("h", "tenant-a")
        .with_limits(limits)
        .with_origin(origin(&server));
    hostile(&host, config).await;
    let url = format!("{}/x", server.origin());
    let answer = host
        .run_turn("h", "s", &format!("fetch-n 3 {url}"))
        .await
        .unwrap();
    let outcomes: Vec<&str> = answer.lines().collect();
    assert!(
        outcomes[0].starts_with("200") && outcomes[1].starts_with("200"),
        "{answer}"
    );
    assert!(
        outcomes[2].contains("at most 2 requests per turn"),
        "{answer}"
    );
    assert_eq!(server.requests().len(), 2);

    let answer = host
        .run_turn("h", "s", &format!("post 1000 {url}"))
        .await
        .unwrap();
    assert!(answer.starts_with("200"), "{answer}");
    let answer = host
        .run_turn("h", "s", &format!("post 1001 {url}"))
        .await
        .unwrap();
    assert!(answer.starts_with("error:"), "{answer}");
    assert_eq!(server.requests().len(), 3, "an over-size body was sent");

    server.set_mode(Mode::Huge(20_000));
    let answer = host
        .run_turn("h", "s", &format!("fetch {url}"))
        .await
        .unwrap();
    assert!(
        answer.starts_with("error:") && answer.contains("body size"),
        "{answer}"
    );

    server.set_mode(Mode::Slow(Duration::from_secs(5)));
    let answer = host
        .run_turn("h", "s", &format!("fetch {url}"))
        .await
        .unwrap();
    assert!(answer.contains("ConnectionReadTimeout"), "{answer}");

    // A server whose accept queue is full: the SYN goes unanswered, and the connect
    // timeout ends the wait.
    let (port, _listener, _queued) = a_server_that_never_accepts().await;
    let mut limits = Limits::default();
    limits.connect_timeout = Duration::from_millis(300);
    let origin = AllowedOrigin::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let config = PluginConfig::new("slow-connect", "tenant-a")
        .with_limits(limits)
        .with_origin(origin);
    hostile(&host, config).await;
    let url = format!("http://127.0.0.1:{port}/x");
    let answer = host
        .run_turn("slow-connect", "s", &format!("fetch {url}"))
        .await
        .unwrap();
    assert!(answer.contains("ConnectionTimeout"), "{answer}");
}

/// A listener with a backlog of 0 and connections queued until a new one hangs.
async fn a_server_that_never_accepts() -> (u16, tokio::net::TcpListener, Vec<tokio::net::TcpStream>)
{
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut queued = Vec::new();
    for _ in 0..16 {
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        match tokio::time::timeout(Duration::from_millis(200), connect).await {
            Ok(Ok(stream)) => queued.push(stream),
            _ => return (port, listener, queued),
        }
    }
    panic!("the accept queue of a listener with backlog 0 never filled");
}

/// A model slower than the turn's deadline: the turn ends at its deadline with
/// `Deadline` and nothing of it is written.
async fn a_slow_model_is_cut_by_the_deadline(backend: Backend) {
    let host = backend.host();
    let server = ModelServer::start().await;
    let mut limits = Limits::default();
    limits.deadline = Duration::from_millis(800);
    llm_chat(&host, &server, limits).await;
    server.set_mode(Mode::Slow(Duration::from_secs(30)));
    let e = host.run_turn("llm", "bob", "hello?").await.unwrap_err();
    assert!(matches!(e, TurnError::Deadline { .. }), "{e}");
    assert!(!host.inspect("llm", "bob").await.unwrap().exists);
    assert_eq!(server.requests().len(), 1);
}

conformance!(
    the_llm_chat_example_talks_to_its_model,
    secret_headers_are_the_hosts,
    only_allowed_origins_are_reached,
    outbound_limits_hold,
    a_slow_model_is_cut_by_the_deadline,
);
