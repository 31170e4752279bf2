//! The chat agent in every language (Rust `examples/llm-chat`, Python
//! `examples/py-chat`, JavaScript `examples/js-chat`) against model servers that
//! are not all ours: the axum fixture, a stand-in on Python's standard
//! `http.server` (which reads a request body by `Content-Length` only, like many
//! small servers and proxies), the same stand-in answering plain JSON to a
//! request that asks for a stream, and Debian's nginx as a reverse proxy in front
//! of it. Each agent asks for its answer streamed (`Chat` `stream`) and not
//! (`complete`); every model request must carry the prompt and every stored
//! reply must be the model's text (`cargo test -p agent-host-tests --test
//! model_servers`; needs python3 and nginx, see tests/setup.sh).

use agent_host::{AllowedOrigin, Host, Limits, PluginConfig, TurnError, TurnEvent, TurnOptions};
use agent_host_tests::model_server::{Mode, ModelServer, Recorded};
use agent_host_tests::nginx::Nginx;
use agent_host_tests::python_model::PythonModel;
use agent_host_tests::{Backend, load, plugins};
use serde_json::Value;

/// A model server under test.
enum Server {
    Axum(ModelServer),
    Python(PythonModel),
    Nginx(Nginx, PythonModel),
}

impl Server {
    fn origin(&self) -> String {
        match self {
            Self::Axum(s) => s.origin(),
            Self::Python(s) => s.origin(),
            Self::Nginx(proxy, _) => proxy.origin(),
        }
    }

    /// Every request the model got (behind nginx: as nginx passed it on).
    fn requests(&self) -> Vec<Recorded> {
        match self {
            Self::Axum(s) => s.requests(),
            Self::Python(s) | Self::Nginx(_, s) => s.requests(),
        }
    }

    /// True when the model sees the plugin's request as the plugin sent it (no
    /// proxy rewrote its framing).
    fn direct(&self) -> bool {
        !matches!(self, Self::Nginx(..))
    }
}

/// `wasm` as plugin `id`, talking to the model at `origin`, streaming its
/// answers or not (the examples' `MODEL_STREAM`).
async fn agent(host: &Host, id: &str, origin: &str, wasm: &str, stream: bool) {
    // A prefix of its own: the agents keep their sessions apart.
    let config = PluginConfig::new(id, id)
        .with_limits(Limits::default())
        .with_env(vec![
            ("MODEL_URL".into(), format!("{origin}/v1")),
            ("MODEL".into(), "small".into()),
            ("MODEL_STREAM".into(), stream.to_string()),
        ])
        .with_origin(AllowedOrigin::parse(origin).unwrap());
    load(host, config, wasm).await;
}

fn said(input: &str, messages: usize) -> String {
    format!("You said {input:?}; I saw {messages} messages.")
}

/// A turn, with a caller that streams or not: its answer and the chunks shown.
async fn turn(
    host: &Host,
    id: &str,
    input: &str,
    watch: bool,
) -> Result<(String, Vec<String>), TurnError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let options = if watch {
        TurnOptions::default().with_stream(tx)
    } else {
        drop(tx);
        TurnOptions::default()
    };
    let answer = host.run_turn_with(id, "alice", input, options).await?;
    let mut chunks = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            TurnEvent::Chunk(chunk) => chunks.push(chunk),
            other => panic!("{id}: unexpected {other:?}"),
        }
    }
    Ok((answer.output, chunks))
}

/// The agent `wasm`, streamed and not, two turns each: the model sees the prompt
/// and the history, the caller sees the answer, the store keeps the model's text.
/// `streams`: the server answers a request for a stream with an event stream.
async fn talk(server: Server, streams: bool, language: &str, wasm: &str) {
    let backend = Backend::embedded();
    let host = backend.cached_host();
    for stream in [false, true] {
        let id = format!("{language}-{}", if stream { "stream" } else { "complete" });
        agent(&host, &id, &server.origin(), wasm, stream).await;
        let mut replies = Vec::new();
        // The second request's body (10 KiB of input, with the history) is more
        // than a guest writes at once (wasi:io takes 4,096 bytes a write), and so
        // is its answer, which says it back.
        let long = "Which flour? ".repeat(800);
        for (n, input) in ["I bake sourdough.", long.trim_end()]
            .into_iter()
            .enumerate()
        {
            let before = server.requests().len();
            // The first turn with a caller that streams, the second without.
            let (output, chunks) = turn(&host, &id, input, n == 0)
                .await
                .unwrap_or_else(|e| panic!("{id}, turn {n}: {e}"));
            let expected = said(input, 2 + 2 * n);
            assert_eq!(output, expected, "{id}, turn {n}");
            if n == 0 {
                assert_eq!(chunks.concat(), expected, "{id}: the chunks shown");
                if stream && streams {
                    assert!(chunks.len() > 1, "{id}: one chunk per piece: {chunks:?}");
                }
            }
            let got = server.requests();
            assert_eq!(got.len(), before + 1, "{id}, turn {n}: one model request");
            let request = &got[before];
            let sent = request.json();
            let messages = sent["messages"].as_array().cloned().unwrap_or_default();
            assert_eq!(messages.len(), 2 + 2 * n, "{id}, turn {n}: {request:?}");
            assert_eq!(messages[2 * n + 1]["content"], input, "{id}, turn {n}");
            if n == 1 {
                assert_eq!(messages[2]["content"], replies[0], "{id}: the history");
                assert!(
                    request.body.len() > 2 * 4096,
                    "{id}: {}",
                    request.body.len()
                );
            }
            assert_eq!(sent["model"], "small", "{id}");
            assert_eq!(sent["stream"] == true, stream, "{id}: {sent}");
            if stream {
                assert_eq!(
                    sent["stream_options"]["include_usage"], true,
                    "{id}: {sent}"
                );
            }
            if server.direct() {
                let length = request.body.len().to_string();
                assert_eq!(
                    request.header("content-length"),
                    Some(length.as_str()),
                    "{id}, turn {n}: the body's length, known, is sent: {:?}",
                    request.headers
                );
                assert_eq!(request.header("transfer-encoding"), None, "{id}");
            }
            replies.push(output);
        }
        // Both sides of both turns are stored, the replies as the model said them.
        let stored: Vec<Value> = host
            .inspect(&id, "alice")
            .await
            .unwrap()
            .history
            .iter()
            .map(|item| serde_json::from_slice(item).unwrap())
            .collect();
        assert_eq!(stored.len(), 4, "{id}: {stored:?}");
        assert_eq!(stored[1]["role"], "assistant", "{id}");
        assert_eq!(stored[1]["content"], replies[0], "{id}");
        assert_eq!(stored[3]["content"], replies[1], "{id}");
    }
}

async fn axum_fixture() -> Server {
    Server::Axum(ModelServer::start().await)
}

fn python_http_server() -> Server {
    Server::Python(PythonModel::start())
}

/// A server that answers plain JSON to a request for a stream.
fn python_http_server_that_does_not_stream() -> Server {
    Server::Python(PythonModel::ignoring_stream())
}

fn nginx_in_front_of_python() -> Server {
    let model = PythonModel::start();
    let proxy = Nginx::proxy_to(&model.origin());
    Server::Nginx(proxy, model)
}

/// An answer with no text, or one that is not a chat completion, is an error:
/// the turn fails as the model being unavailable and stores nothing (never an
/// empty reply as if the model had said it).
async fn an_empty_or_unreadable_answer_is_an_error(language: &str, wasm: &str) {
    let backend = Backend::embedded();
    let host = backend.cached_host();
    let model = ModelServer::start().await;
    for stream in [false, true] {
        let id = format!("{language}-{}", if stream { "stream" } else { "complete" });
        agent(&host, &id, &model.origin(), wasm, stream).await;
        // 9 MiB is past the default `max_response_bytes` (8 MiB): the body is
        // cut partway, and the plugin is told so in words.
        for mode in [Mode::Empty, Mode::Huge(10), Mode::Huge(9 << 20)] {
            model.set_mode(mode);
            let e = turn(&host, &id, "hello?", false).await.unwrap_err();
            assert!(matches!(e, TurnError::Plugin { .. }), "{id}, {mode:?}: {e}");
            assert!(
                e.to_string().contains("the model is unavailable"),
                "{id}, {mode:?}: {e}"
            );
            assert!(
                !e.to_string().contains(" object at 0x"),
                "{id}, {mode:?}: {e}"
            );
            if matches!(mode, Mode::Huge(n) if n > 1 << 20) {
                // The cut is said in words: the host's for Rust and Python, the
                // engine's own for JavaScript's fetch.
                let cut = match language {
                    "javascript" => "IO error reading from incoming response body",
                    _ => "HTTP response body size exceeds limit",
                };
                assert!(e.to_string().contains(cut), "{id}, {mode:?}: {e}");
            }
            let snapshot = host.inspect(&id, "alice").await.unwrap();
            assert!(
                !snapshot.exists,
                "{id}, {mode:?}: stored {:?}",
                snapshot.history
            );
        }
    }
}

/// A streamed call whose model answers 500 with an error body that never ends is
/// an error at once, with the start of that body: the SDK does not wait for the
/// rest (it used to, until the turn's deadline).
async fn an_error_answer_that_never_ends_is_an_error_at_once(language: &str, wasm: &str) {
    let backend = Backend::embedded();
    let host = backend.cached_host();
    let model = PythonModel::failing_endlessly();
    let id = format!("{language}-stream");
    agent(&host, &id, &model.origin(), wasm, true).await;
    let e = turn(&host, &id, "hello?", false).await.unwrap_err();
    // Not TurnError::Deadline: the plugin got its error and answered with it.
    assert!(matches!(e, TurnError::Plugin { .. }), "{id}: {e}");
    let message = e.to_string();
    assert!(
        message.contains("the model is unavailable") && message.contains("500"),
        "{id}: {message}"
    );
    assert!(message.contains("upstream failed: EEEE"), "{id}: {message}");
}

/// A plugin's connection to its model stays open across turns (nginx counts the
/// requests each connection carried), and is never lent to another plugin.
async fn a_plugins_connection_is_kept_alive_across_turns(language: &str, wasm: &str) {
    let backend = Backend::embedded();
    let host = backend.cached_host();
    let model = PythonModel::start();
    let proxy = Nginx::proxy_to(&model.origin());
    for id in ["first", "second"] {
        agent(&host, id, &proxy.origin(), wasm, true).await;
    }
    for input in ["one", "two", "three"] {
        turn(&host, "first", input, false)
            .await
            .unwrap_or_else(|e| panic!("{language}: {e}"));
    }
    turn(&host, "second", "four", false)
        .await
        .unwrap_or_else(|e| panic!("{language}: {e}"));
    let seen = proxy.connections();
    assert_eq!(seen.len(), 4, "{language}: {seen:?}");
    let first = seen[0].0;
    assert_eq!(
        &seen[..3],
        &[(first, 1), (first, 2), (first, 3)],
        "{language}: one connection for the first plugin's three turns"
    );
    assert_ne!(
        seen[3].0, first,
        "{language}: another plugin, another connection"
    );
    assert_eq!(seen[3].1, 1, "{language}: {seen:?}");
}

/// Metering against servers that are not ours: Python's `http.server` stand-in
/// behind Debian's nginx (which re-chunks the event stream on its way), streamed
/// and not: the turn's tokens are the ones the stand-in reported (its prompt
/// tokens are the number of messages, its completion tokens the answer's words).
async fn tokens_are_read_through_nginx(language: &str, wasm: &str) {
    let backend = Backend::embedded();
    let host = backend.cached_host();
    let model = PythonModel::start();
    let proxy = Nginx::proxy_to(&model.origin());
    for stream in [false, true] {
        let id = format!("{language}-metered-{stream}");
        let config = PluginConfig::new(&id, &id)
            .with_env(vec![
                ("MODEL_URL".into(), format!("{}/v1", proxy.origin())),
                ("MODEL".into(), "small".into()),
                ("MODEL_STREAM".into(), stream.to_string()),
            ])
            .with_origin(
                AllowedOrigin::parse(&proxy.origin())
                    .unwrap()
                    .with_meter(agent_host::Meter::OpenAi),
            );
        load(&host, config, wasm).await;
        let answer = host
            .run_turn_with(&id, "alice", "I bake sourdough.", TurnOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        let words = answer.output.split_whitespace().count() as u64;
        let usage = answer.usage;
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.requests,
                usage.estimated
            ),
            (2, words, 1, 0),
            "{id}: {usage:?}"
        );
        assert_eq!(host.model_usage(&id).await.unwrap().day, usage, "{id}");
    }
}

/// One test per agent and server: `LANGUAGE::SERVER`.
macro_rules! agents {
    ($($language:ident: $wasm:expr),* $(,)?) => {
        $(
            mod $language {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn axum_fixture() {
                    let server = super::axum_fixture().await;
                    talk(server, true, stringify!($language), $wasm).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn python_http_server() {
                    let server = super::python_http_server();
                    talk(server, true, stringify!($language), $wasm).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn python_http_server_that_does_not_stream() {
                    let server = super::python_http_server_that_does_not_stream();
                    talk(server, false, stringify!($language), $wasm).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn nginx_in_front_of_python() {
                    let server = super::nginx_in_front_of_python();
                    talk(server, true, stringify!($language), $wasm).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn a_plugins_connection_is_kept_alive_across_turns() {
                    super::a_plugins_connection_is_kept_alive_across_turns(
                        stringify!($language),
                        $wasm,
                    )
                    .await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn tokens_are_read_through_nginx() {
                    super::tokens_are_read_through_nginx(stringify!($language), $wasm).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn an_error_answer_that_never_ends_is_an_error_at_once() {
                    super::an_error_answer_that_never_ends_is_an_error_at_once(
                        stringify!($language),
                        $wasm,
                    )
                    .await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn an_empty_or_unreadable_answer_is_an_error() {
                    super::an_empty_or_unreadable_answer_is_an_error(stringify!($language), $wasm)
                        .await;
                }
            }
        )*
    };
}

agents!(
    rust: plugins::LLM_CHAT,
    python: plugins::PY_CHAT,
    javascript: plugins::JS_CHAT,
);
