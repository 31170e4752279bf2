//! A chat-completions server the test holds: a request whose last user message
//! is "hold" waits until the test releases it, and the test learns when it
//! arrived, so a turn can be kept in flight without sleeping. Other requests are
//! answered at once. Its answers are event streams, as the llm-chat example asks.
//! A model named `v...` is named in the answer (`You said "x". [v2]`), so a test
//! can tell which config of a plugin a turn ran with.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, watch};

struct Shared {
    arrived: mpsc::UnboundedSender<()>,
    released: watch::Receiver<bool>,
}

/// A running server, stopped on drop.
pub struct Gate {
    addr: SocketAddr,
    arrivals: Mutex<mpsc::UnboundedReceiver<()>>,
    release: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    /// Starts it on a free loopback port (inside a Tokio runtime).
    pub async fn start() -> Self {
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        let shared = Arc::new(Shared { arrived, released });
        let router = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            addr,
            arrivals: Mutex::new(arrivals),
            release,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until a held request has arrived (each call waits for one more).
    pub async fn arrived(&self) {
        self.arrivals
            .lock()
            .await
            .recv()
            .await
            .expect("the gate runs");
    }

    /// Lets every held request, and every later one, be answered.
    pub fn release(&self) {
        self.release.send_replace(true);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn complete(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    if last == "hold" {
        let _ = shared.arrived.send(());
        let mut released = shared.released.clone();
        let _ = released.wait_for(|r| *r).await;
    }
    let text = match request["model"].as_str().filter(|m| m.starts_with('v')) {
        Some(model) => format!("You said {last:?}. [{model}]"),
        None => format!("You said {last:?}."),
    };
    let piece = json!({"choices": [{"index": 0, "delta": {"content": text}}]});
    let body = format!("data: {piece}\n\ndata: [DONE]\n\n");
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}
