//! The adversarial suite against `agent-host serve`: hostile HTTP clients (slow,
//! idle, flooding connections, malformed requests) and a hostile plugin get the one
//! error body, cannot starve the server, and cannot keep probes out.

mod support;

use std::time::Duration;

use agent_host_tests::{eventually, plugins};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{Server, TOKEN_A, call, get, kind, turn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_CONNECTIONS: usize = 8;

fn config() -> String {
    format!(
        r#"
[store]
path = "data/state.redb"

[server]
listen = "127.0.0.1:0"
max_input = "4KiB"
max_connections = {MAX_CONNECTIONS}
header_timeout = "1s"
body_timeout = "1s"
idle_timeout = "2s"

[[plugin]]
id = "chat"
wasm = "{chat}"
prefix = "tenant-a"

[[plugin]]
id = "hostile"
wasm = "{hostile}"
prefix = "tenant-a"
limits = {{ max_output = "2KiB" }}

[[plugin]]
id = "wreck"
wasm = "{wreck}"
prefix = "tenant-a"

[[token]]
tenant = "a"
secret = "{TOKEN_A}"
plugins = ["chat", "hostile", "wreck"]
"#,
        chat = plugins::CHAT_MEMORY,
        hostile = plugins::HOSTILE,
        wreck = plugins::WRECK,
    )
}

/// The documented error body, with `kind`; panics on anything else.
fn assert_error(what: &str, status: StatusCode, body: &Value, want: (StatusCode, &str)) {
    assert_eq!((status, kind(body)), want, "{what}: {body}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{what}: {message:?}"
    );
}

#[tokio::test]
async fn every_error_has_the_one_error_body() {
    let s = Server::start(&config());
    let client = reqwest::Client::new();
    let turn_url = s.url("/v1/plugins/chat/sessions/alice/turns");
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    };

    let (status, body) = send(
        client
            .post(&turn_url)
            .bearer_auth(TOKEN_A)
            .body(vec![0xff, 0xfe]),
    )
    .await;
    assert_error(
        "non-UTF-8 input",
        status,
        &body,
        (StatusCode::BAD_REQUEST, "invalid_input"),
    );
    let (status, body) = send(
        client
            .post(&turn_url)
            .bearer_auth(TOKEN_A)
            .body("x".repeat(5000)),
    )
    .await;
    assert_error(
        "input over max_input",
        status,
        &body,
        (StatusCode::PAYLOAD_TOO_LARGE, "input_too_large"),
    );
    for query in ["limit=-1", "limit=0", "limit=x", "color=red"] {
        let (status, body) = get(
            &s,
            Some(TOKEN_A),
            &format!("/v1/plugins/chat/sessions?{query}"),
        )
        .await;
        assert_error(
            query,
            status,
            &body,
            (StatusCode::BAD_REQUEST, "invalid_argument"),
        );
    }
    let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/%FF/sessions").await;
    assert_error(
        "%FF in the path",
        status,
        &body,
        (StatusCode::BAD_REQUEST, "invalid_argument"),
    );
    let (status, body) = call(Method::PUT, s.url("/v1/plugins"), Some(TOKEN_A), None).await;
    assert_error(
        "a wrong method",
        status,
        &body,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    );
    let (status, body) = call(Method::DELETE, turn_url.clone(), Some(TOKEN_A), None).await;
    assert_error(
        "a wrong method",
        status,
        &body,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    );
    let (status, body) = get(&s, None, "/no/such/path").await;
    assert_error(
        "an unknown path",
        status,
        &body,
        (StatusCode::NOT_FOUND, "not_found"),
    );

    // What a plugin says reaches the body as one line.
    let (status, body) = turn(&s, TOKEN_A, "hostile", "h", "forge").await;
    assert_error(
        "a forged error text",
        status,
        &body,
        (StatusCode::UNPROCESSABLE_ENTITY, "plugin_error"),
    );
    let (status, body) = turn(&s, TOKEN_A, "wreck", "w", "trap").await;
    assert_error(
        "a panic",
        status,
        &body,
        (StatusCode::INTERNAL_SERVER_ERROR, "trap"),
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("wreck: trapping after writing"),
        "{message}"
    );
    let (status, body) = turn(&s, TOKEN_A, "hostile", "h", "answer 3000").await;
    assert_error(
        "an answer over max_output",
        status,
        &body,
        (StatusCode::INTERNAL_SERVER_ERROR, "output_too_large"),
    );
    // A good request still works.
    let (status, body) = get(&s, Some(TOKEN_A), "/v1/plugins/chat/sessions?limit=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Opens a connection and sends `bytes`.
async fn open(s: &Server, bytes: &[u8]) -> TcpStream {
    let addr = s.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Waits (bounded) for the server to close `stream`, reading what it sends first.
async fn closed_by_server(mut stream: TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_and_probes_always_answer() {
    let s = Server::start(&config());
    let half = b"POST /v1/plugins/chat/sessions/a/turns HTTP/1.1\r\nHost: x\r\n";
    // Every slot taken by a client that never finishes its request...
    let mut slow = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        slow.push(open(&s, half).await);
    }
    // ...and more connections than the reserve, doing nothing.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(open(&s, b"").await);
    }
    // Probes still answer, on fresh connections.
    for path in ["/healthz", "/metrics"] {
        let (status, body) = get(&s, None, path).await;
        assert_eq!(status, StatusCode::OK, "{path} while full: {body}");
    }
    // Anything else gets `busy` while the server is full.
    let (status, body) = turn(&s, TOKEN_A, "chat", "alice", "hi").await;
    assert_error(
        "a turn while full",
        status,
        &body,
        (StatusCode::SERVICE_UNAVAILABLE, "busy"),
    );

    // The slow clients are cut off at the header timeout, the idle ones too.
    for stream in slow.into_iter().chain(idle) {
        closed_by_server(stream).await;
    }
    // Then the server serves again.
    let served = eventually(Duration::from_secs(5), || async {
        turn(&s, TOKEN_A, "chat", "alice", "hi").await.0 == StatusCode::OK
    })
    .await;
    assert!(served, "no turn served after the slow clients were cut off");

    // A body that stops coming: 408 with the error body, then the connection ends.
    let head = format!(
        "POST /v1/plugins/chat/sessions/b/turns HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {TOKEN_A}\r\nContent-Length: 100\r\n\r\npartial"
    );
    let answer = closed_by_server(open(&s, head.as_bytes()).await).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""kind":"timeout""#), "{answer}");

    // A kept-alive connection with no next request is closed at the idle timeout.
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = closed_by_server(open(&s, request).await).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The head of a `POST path` with `headers` and a `Content-Length` of `length`,
/// then `body` (less than that: the rest never comes).
fn trickle(path: &str, headers: &str, length: usize, body: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {length}\r\n\r\n{body}")
}

/// The JSON error body at the end of a raw answer.
fn raw_body(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not the error body: {answer}"))
}

#[tokio::test]
async fn the_token_is_checked_before_any_body_byte_is_read() {
    let s = Server::start(&config());
    let paths = [
        "/v1/plugins/chat/sessions/a/rollback",
        "/v1/plugins/chat/sessions/a/fork",
        "/v1/plugins/chat/sessions/a/turns",
    ];
    // As many clients as the server serves, without a token, each sending a bit
    // of a body that never ends (over every limit, for some): each gets 401 at
    // once, without sending more, and its connection is closed.
    let mut open_ones = Vec::new();
    for i in 0..MAX_CONNECTIONS {
        let length = [100, 3 << 20][i % 2];
        let head = trickle(paths[i % paths.len()], "", length, "{\"to\"");
        open_ones.push(open(&s, head.as_bytes()).await);
    }
    for stream in open_ones {
        let answer = closed_by_server(stream).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert_error(
            "no token",
            StatusCode::UNAUTHORIZED,
            &raw_body(&answer),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
        );
    }
    // A token that may not call the plugin: 404 before the body, too.
    let auth = format!("Authorization: Bearer {TOKEN_A}\r\n");
    let head = trickle("/v1/plugins/other/sessions/a/fork", &auth, 100, "{");
    let answer = closed_by_server(open(&s, head.as_bytes()).await).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert_eq!(kind(&raw_body(&answer)), "unknown_plugin", "{answer}");
    // The server is not full of them. (A closed connection gives its slot back
    // just after its socket closes, hence the few tries.)
    let served = eventually(Duration::from_secs(5), || async {
        turn(&s, TOKEN_A, "chat", "alice", "hi").await.0 == StatusCode::OK
    })
    .await;
    assert!(served, "no turn served after the clients without a token");
}

#[tokio::test]
async fn bodies_with_a_token_are_bounded_in_size_and_time_with_the_error_body() {
    let s = Server::start(&config());
    let auth = format!("Authorization: Bearer {TOKEN_A}\r\n");
    // Said to be over the limit: 413 before any of it is read.
    for (path, length) in [
        ("/v1/plugins/chat/sessions/a/rollback", 3 << 20),
        ("/v1/plugins/chat/sessions/a/fork", 65 << 10),
        ("/v1/plugins/chat/sessions/a/turns", 5000),
    ] {
        let head = trickle(path, &auth, length, "");
        let answer = closed_by_server(open(&s, head.as_bytes()).await).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert_error(
            path,
            StatusCode::PAYLOAD_TOO_LARGE,
            &raw_body(&answer),
            (StatusCode::PAYLOAD_TOO_LARGE, "input_too_large"),
        );
    }
    // Found to be over it while read (chunked, no length said): 413 too. The
    // chunk says it is bigger than what is sent, so the server reads all of it.
    let head = format!(
        "POST /v1/plugins/chat/sessions/a/rollback HTTP/1.1\r\nHost: x\r\n{auth}\
         Transfer-Encoding: chunked\r\n\r\n20000\r\n{}",
        " ".repeat((64 << 10) + 1)
    );
    let answer = closed_by_server(open(&s, head.as_bytes()).await).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(kind(&raw_body(&answer)), "input_too_large", "{answer}");
    // A body that stops coming: 408 at `body_timeout` on every route.
    for path in [
        "/v1/plugins/chat/sessions/a/rollback",
        "/v1/plugins/chat/sessions/a/fork",
    ] {
        let head = trickle(path, &auth, 100, "{\"to\"");
        let answer = closed_by_server(open(&s, head.as_bytes()).await).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert_error(
            path,
            StatusCode::REQUEST_TIMEOUT,
            &raw_body(&answer),
            (StatusCode::REQUEST_TIMEOUT, "timeout"),
        );
    }
    // A body that is not the JSON asked for.
    for body in ["{\"to\":", "\"one\"", "{\"to\": 1, \"extra\": 2}"] {
        let (status, answer) = call(
            Method::POST,
            s.url("/v1/plugins/chat/sessions/a/rollback"),
            Some(TOKEN_A),
            Some(body),
        )
        .await;
        assert_error(
            body,
            status,
            &answer,
            (StatusCode::BAD_REQUEST, "invalid_argument"),
        );
    }
}

#[tokio::test]
async fn a_bad_session_id_is_invalid_session_on_every_route() {
    let s = Server::start(&config());
    let bad = "/v1/plugins/chat/sessions/bad%01id";
    let requests = [
        (Method::POST, format!("{bad}/turns"), Some("hi")),
        (Method::GET, bad.to_string(), None),
        (Method::DELETE, bad.to_string(), None),
        (Method::GET, format!("{bad}/versions"), None),
        (Method::GET, format!("{bad}/versions/1"), None),
        (
            Method::POST,
            format!("{bad}/rollback"),
            Some(r#"{"to": 1}"#),
        ),
        (
            Method::POST,
            format!("{bad}/fork"),
            Some(r#"{"to": "b", "from_version": 1}"#),
        ),
        (
            Method::POST,
            "/v1/plugins/chat/sessions/good/fork".to_string(),
            Some(r#"{"to": "bad\u0001id", "from_version": 1}"#),
        ),
        (Method::GET, format!("{bad}/turns/0123abcd/events"), None),
    ];
    for (method, path, body) in requests {
        let what = format!("{method} {path}");
        let (status, answer) = call(method, s.url(&path), Some(TOKEN_A), body).await;
        assert_error(
            &what,
            status,
            &answer,
            (StatusCode::BAD_REQUEST, "invalid_session"),
        );
    }
}
