//! A chat-completions client for OpenAI-compatible servers (OpenAI, a local
//! llama.cpp or vLLM server...), over [`crate::http`].
//!
//! The plugin holds no key: the operator lists the model's origin in the plugin's
//! `[[plugin.outbound]]` with the key as a secret header, and the host adds it. The
//! base URL and the model come from the plugin's environment (`MODEL_URL`, e.g.
//! `https://api.openai.com/v1`, and `MODEL`), set in the plugin's `env`.
//!
//! ```no_run
//! use agent_sdk::llm::{Chat, Message};
//! # fn run() -> agent_sdk::Result<()> {
//! let reply = Chat::from_env()?.complete(&[
//!     Message::system("You are brief."),
//!     Message::user("Which flour for sourdough?"),
//! ])?;
//! # Ok(()) }
//! ```

mod answer;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A model behind an OpenAI-compatible `/chat/completions` endpoint.
#[derive(Clone, Debug)]
pub struct Chat {
    base_url: String,
    model: String,
}

impl Chat {
    /// The model at `base_url` (e.g. `https://api.openai.com/v1`).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            model: model.into(),
        }
    }

    /// The model named by the plugin's `MODEL_URL` and `MODEL` variables.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                Error::msg(format!(
                    "{name} is not set in the plugin's env (see [[plugin]] env)"
                ))
            })
        };
        Ok(Self::new(var("MODEL_URL")?, var("MODEL")?))
    }

    /// The model's answer to `messages`, whole. An answer without text (or one
    /// that is not a chat completion) is an error, never an empty reply.
    pub fn complete(&self, messages: &[Message]) -> Result<String> {
        let request = Request {
            model: &self.model,
            messages,
            stream: None,
            stream_options: None,
        };
        let response = crate::http::post_json(&self.url(), &request)?;
        if !response.is_success() {
            return Err(Error::Http(format!(
                "the model answered {} ({})",
                response.status(),
                String::from_utf8_lossy(response.body())
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        answer::completion(response.body())
    }

    /// The model's answer to `messages`, streamed: each piece of it is emitted
    /// ([`crate::emit`]) as the model sends it, so a caller that asked for a stream
    /// sees it come; returns the whole answer.
    ///
    /// It asks for an event stream, with the token usage at its end
    /// (`stream_options.include_usage`, which servers that do not know it ignore).
    /// A server that does not stream and answers one JSON completion is fine too:
    /// its answer is emitted in one piece. An answer without text, or one that is
    /// neither form, is an error, never an empty reply.
    pub fn stream(&self, messages: &[Message]) -> Result<String> {
        let request = Request {
            model: &self.model,
            messages,
            stream: Some(true),
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
        };
        let body = serde_json::to_vec(&request)?;
        let headers = [
            ("content-type", "application/json"),
            ("accept", "text/event-stream, application/json"),
        ];
        let mut answer = answer::Answer::default();
        let mut emit = |piece: &str| crate::emit(piece);
        crate::http::send_lines("POST", &self.url(), &headers, body, |line| {
            answer.line(line, &mut emit)
        })?;
        answer.finish(&mut emit)
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }
}

/// A chat-completions request.
#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}
