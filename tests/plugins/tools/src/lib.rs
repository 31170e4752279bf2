//! Test plugin: a tool loop in Rust; the same as `py-tools-agent` and
//! `js-tools-agent`. Tools: `add(a, b)`, `divide(a, b)` (an error for b = 0,
//! which the model is told) and `note(text)`, which keeps the note in the
//! session's state (`{"notes": [...]}`). The history keeps every message of each
//! turn (the user's, the tool calls, their results, the answer) and the last 40
//! of them, trimmed so a call is not cut from its results, go to the model with
//! the next input. The answer is streamed unless `MODEL_STREAM = "false"`; a
//! failed model (or one that calls tools 8 times without answering) is the
//! error "the model is unavailable (...)", and the history is left as it was.
//! With `MCP_URL` set, the tools of that MCP server come first, prefixed `mcp_`
//! (`mcp_add`...); an MCP server that cannot be reached is the error "the MCP
//! server is unavailable (...)".

use agent_sdk::llm::{Chat, Message, Tool, trim_history};
use agent_sdk::{Agent, Error, Result, Session};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How many past messages go to the model.
const CONTEXT: u32 = 40;

const SYSTEM: &str = "You are a helpful assistant. Use the tools for arithmetic and notes.";

#[derive(Deserialize)]
struct Numbers {
    a: f64,
    b: f64,
}

#[derive(Deserialize)]
struct Note {
    text: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Notes {
    #[serde(default)]
    notes: Vec<String>,
}

fn numbers() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    })
}

struct ToolsAgent;

impl Agent for ToolsAgent {
    fn handle(session: &Session, input: &str) -> Result<String> {
        let add = Tool::typed("add", "Adds two numbers.", numbers(), |n: Numbers| {
            Ok((n.a + n.b).to_string())
        });
        let divide = Tool::typed("divide", "Divides a by b.", numbers(), |n: Numbers| {
            if n.b == 0.0 {
                return Err(Error::msg("division by zero"));
            }
            Ok((n.a / n.b).to_string())
        });
        let note = Tool::typed(
            "note",
            "Keeps a note in the session.",
            json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            |note: Note| {
                let mut state: Notes = session.load()?.unwrap_or_default();
                state.notes.push(note.text);
                session.save(&state)?;
                Ok(format!("noted, {} in all", state.notes.len()))
            },
        );
        let history: Vec<Message> = session.last(CONTEXT)?;
        let mut messages = vec![Message::system(SYSTEM)];
        messages.extend_from_slice(trim_history(&history, CONTEXT as usize, None));
        messages.push(Message::user(input));
        let start = messages.len() - 1;
        let mut tools: Vec<Tool<'_>> = match std::env::var("MCP_URL") {
            Ok(url) if !url.is_empty() => agent_sdk::mcp::connect(&url)
                .and_then(|client| client.chat_tools_prefixed("mcp_"))
                .map_err(|e| Error::msg(format!("the MCP server is unavailable ({e})")))?,
            _ => Vec::new(),
        };
        tools.extend([add, divide, note]);
        let chat = Chat::from_env()?;
        let reply = if std::env::var("MODEL_STREAM").is_ok_and(|v| v == "false") {
            chat.complete_with_tools(&mut messages, &mut tools)
                .and_then(|reply| {
                    agent_sdk::emit(&reply)?;
                    Ok(reply)
                })
        } else {
            chat.stream_with_tools(&mut messages, &mut tools)
        }
        .map_err(|e| Error::msg(format!("the model is unavailable ({e})")))?;
        session.append(&messages[start..])?;
        Ok(reply)
    }
}

agent_sdk::export_agent!(ToolsAgent);
