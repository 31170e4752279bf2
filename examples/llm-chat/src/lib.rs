//! A chat agent that calls its model: it sends the last messages of the session's
//! history and the new input to an OpenAI-compatible chat-completions endpoint and
//! stores both sides of the exchange.
//!
//! It holds no API key. The operator's config names the model and lets the plugin
//! reach it; the host adds the key to the request after it leaves the plugin:
//!
//! ```toml
//! [[plugin]]
//! id = "llm-chat"
//! wasm = "llm_chat.wasm"
//! prefix = "tenant-a"
//! env = { MODEL_URL = "https://api.openai.com/v1", MODEL = "gpt-4o-mini" }
//! [[plugin.outbound]]
//! origin = "https://api.openai.com"
//! secret_headers = { Authorization = "Bearer ${env:LLM_API_KEY}" }
//! ```
//!
//! The model's answer is streamed: each piece is emitted as it arrives, so a caller
//! that asked for a stream (`Accept: text/event-stream`) sees it come. With
//! `MODEL_STREAM = "false"` in the env it asks for the whole answer at once (and
//! emits it in one piece). When the model cannot be reached, fails or answers no
//! text, the turn answers "the model is unavailable" as a plugin error and stores
//! nothing.

use agent_sdk::llm::{Chat, Message};
use agent_sdk::{Agent, Error, Result, Session};

/// How many past messages go to the model.
const CONTEXT: u32 = 20;

/// What the model is told first, unless the plugin's env has `SYSTEM_PROMPT`.
const SYSTEM: &str = "You are a helpful assistant. Answer briefly.";

struct LlmChat;

impl Agent for LlmChat {
    fn handle(session: &Session, input: &str) -> Result<String> {
        let system = std::env::var("SYSTEM_PROMPT").unwrap_or_else(|_| SYSTEM.into());
        let mut messages = vec![Message::system(system)];
        messages.extend(session.last::<Message>(CONTEXT)?);
        messages.push(Message::user(input));
        // Nothing is written before the model answered: a failed call stores nothing.
        let chat = Chat::from_env()?;
        let reply = if std::env::var("MODEL_STREAM").is_ok_and(|v| v == "false") {
            chat.complete(&messages).and_then(|reply| {
                agent_sdk::emit(&reply)?;
                Ok(reply)
            })
        } else {
            chat.stream(&messages)
        }
        .map_err(|e| Error::msg(format!("the model is unavailable ({e})")))?;
        session.append(&[Message::user(input), Message::assistant(reply.clone())])?;
        Ok(reply)
    }
}

agent_sdk::export_agent!(LlmChat);
