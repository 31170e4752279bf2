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

    /// The model's answer to `messages`.
    pub fn complete(&self, messages: &[Message]) -> Result<String> {
        #[derive(Serialize)]
        struct Request<'a> {
            model: &'a str,
            messages: &'a [Message],
        }
        #[derive(Deserialize)]
        struct Reply {
            choices: Vec<Choice>,
        }
        #[derive(Deserialize)]
        struct Choice {
            message: Message,
        }
        let url = format!("{}/chat/completions", self.base_url);
        let request = Request {
            model: &self.model,
            messages,
        };
        let response = crate::http::post_json(&url, &request)?;
        if !response.is_success() {
            return Err(Error::Http(format!(
                "the model answered {} ({})",
                response.status(),
                response
                    .text()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        let reply: Reply = response.json()?;
        reply
            .choices
            .into_iter()
            .next()
            .map(|c| c.message.content)
            .ok_or_else(|| Error::Http("the model answered no choice".into()))
    }

    /// The model's answer to `messages`, streamed: each piece of it is emitted
    /// ([`crate::emit`]) as the model sends it, so a caller that asked for a stream
    /// sees it come; returns the whole answer.
    pub fn stream(&self, messages: &[Message]) -> Result<String> {
        #[derive(Serialize)]
        struct Request<'a> {
            model: &'a str,
            messages: &'a [Message],
            stream: bool,
        }
        #[derive(Deserialize)]
        struct Chunk {
            choices: Vec<Delta>,
        }
        #[derive(Deserialize)]
        struct Delta {
            delta: Piece,
        }
        #[derive(Deserialize)]
        struct Piece {
            content: Option<String>,
        }
        let url = format!("{}/chat/completions", self.base_url);
        let request = Request {
            model: &self.model,
            messages,
            stream: true,
        };
        let body = serde_json::to_vec(&request)?;
        let headers = [
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
        ];
        let mut answer = String::new();
        crate::http::send_lines("POST", &url, &headers, body, |line| {
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                return Ok(());
            };
            if data == "[DONE]" || data.is_empty() {
                return Ok(());
            }
            let chunk: Chunk = serde_json::from_str(data)?;
            for choice in chunk.choices {
                if let Some(piece) = choice.delta.content.filter(|p| !p.is_empty()) {
                    crate::emit(&piece)?;
                    answer.push_str(&piece);
                }
            }
            Ok(())
        })?;
        Ok(answer)
    }
}
