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
//!
//! ## Tools
//!
//! The model can call functions of the plugin ("function calling", OpenAI's
//! `tools` and `tool_calls`): a [`Tool`] is a name, a description, a JSON Schema
//! of its arguments and a handler. [`Chat::complete_with_tools`] (and
//! [`Chat::stream_with_tools`]) send the tools with the messages, run each call
//! the model asks for, send the results back, and so on until the model answers
//! with text (or [`Chat::with_max_steps`] requests, 8 by default, were not
//! enough: an error). Every message of the loop (the assistant's calls, one
//! `tool` message per call, and the final answer) is appended to the caller's
//! list, so a plugin stores them with the user's message and the next turn's
//! model sees what the tools said; [`trim_history`] cuts such a history to a
//! budget without separating calls from their results.
//!
//! ```no_run
//! use agent_sdk::llm::{Chat, Message, Tool};
//! use serde_json::json;
//! # fn run(session: &agent_sdk::Session) -> agent_sdk::Result<()> {
//! let add = Tool::new(
//!     "add",
//!     "Adds two numbers.",
//!     json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
//!            "required": ["a", "b"]}),
//!     |args| Ok((args["a"].as_f64().unwrap_or(0.0) + args["b"].as_f64().unwrap_or(0.0)).to_string()),
//! );
//! let mut messages = vec![Message::user("What is 2 + 3?")];
//! let reply = Chat::from_env()?.complete_with_tools(&mut messages, &mut [add])?;
//! session.append(&messages)?;   // the question, the call, its result and the answer
//! # Ok(()) }
//! ```

mod answer;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use crate::{Error, Result};

/// How many requests [`Chat::complete_with_tools`] makes at most, unless
/// [`Chat::with_max_steps`] says otherwise.
pub const DEFAULT_MAX_STEPS: usize = 8;

/// One message of a conversation, as OpenAI's chat completions take it.
///
/// The tool fields are skipped when absent, so a plain message is
/// `{"role": ..., "content": ...}` as before, and histories stored before them
/// read back. An assistant message that only calls tools is sent with
/// `"content": null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (empty for an assistant message that only calls tools).
    #[serde(default, deserialize_with = "content")]
    pub content: String,
    /// The tools an assistant message calls.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// The name of the author (or of the tool, for a `tool` message), if given.
    #[serde(default)]
    pub name: Option<String>,
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

    /// An assistant message that calls tools (with the text the model said
    /// alongside, often none).
    pub fn assistant_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: Some(calls),
            ..Self::new("assistant", content)
        }
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::new("tool", content)
        }
    }

    /// True for an assistant message that calls tools.
    pub fn calls_tools(&self) -> bool {
        self.tool_calls
            .as_ref()
            .is_some_and(|calls| !calls.is_empty())
    }

    fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            ..Self::default()
        }
    }

    /// About how many tokens the message costs: 4 characters a token, and 4 for
    /// the message itself.
    fn estimated_tokens(&self) -> usize {
        let calls: usize = self
            .tool_calls
            .iter()
            .flatten()
            .map(|c| c.id.len() + c.function.name.len() + c.function.arguments.len())
            .sum();
        4 + (self.content.chars().count() + calls).div_ceil(4)
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let fields = 2
            + usize::from(self.tool_calls.is_some())
            + usize::from(self.tool_call_id.is_some())
            + usize::from(self.name.is_some());
        let mut out = serializer.serialize_struct("Message", fields)?;
        out.serialize_field("role", &self.role)?;
        if self.content.is_empty() && self.calls_tools() {
            out.serialize_field("content", &None::<&str>)?;
        } else {
            out.serialize_field("content", &self.content)?;
        }
        if let Some(calls) = &self.tool_calls {
            out.serialize_field("tool_calls", calls)?;
        }
        if let Some(id) = &self.tool_call_id {
            out.serialize_field("tool_call_id", id)?;
        }
        if let Some(name) = &self.name {
            out.serialize_field("name", name)?;
        }
        out.end()
    }
}

/// A message's content: text, `null` (an assistant message that only calls
/// tools) or a list of parts, whose text parts are kept.
fn content<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect(),
        _ => String::new(),
    })
}

/// A tool call of an assistant message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which its result names (`tool_call_id`).
    pub id: String,
    /// `function`.
    #[serde(rename = "type", default = "function")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

fn function() -> String {
    "function".into()
}

/// The function a [`ToolCall`] calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments, as the model wrote them: JSON text (not checked).
    #[serde(default)]
    pub arguments: String,
}

/// A function the model may call: a name, a description, a JSON Schema of its
/// arguments (an object schema) and the handler that runs it.
///
/// The handler gets the arguments as parsed JSON and answers text, which goes to
/// the model as the call's result. An error it returns goes to the model too, as
/// `error: ...`, and the loop goes on (so do arguments that are not JSON and calls
/// of a tool that does not exist): the model can try again or say it failed.
pub struct Tool<'a> {
    name: String,
    description: String,
    parameters: Value,
    handler: Box<dyn FnMut(Value) -> Result<String> + 'a>,
}

impl<'a> Tool<'a> {
    /// A tool named `name` (letters, digits, `_` and `-`, as OpenAI wants it),
    /// described to the model by `description`, whose arguments `parameters` (a
    /// JSON Schema) describes.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        handler: impl FnMut(Value) -> Result<String> + 'a,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
            handler: Box::new(handler),
        }
    }

    /// A tool whose handler takes its arguments as a typed value, decoded from
    /// the model's JSON with serde (arguments that do not fit are an error the
    /// model is told).
    pub fn typed<T: DeserializeOwned>(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        mut handler: impl FnMut(T) -> Result<String> + 'a,
    ) -> Self {
        Self::new(name, description, parameters, move |arguments| {
            let arguments = serde_json::from_value(arguments)
                .map_err(|e| Error::msg(format!("the arguments do not fit ({e})")))?;
            handler(arguments)
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The JSON Schema of its arguments.
    pub fn parameters(&self) -> &Value {
        &self.parameters
    }

    /// Runs the handler on `arguments`.
    pub fn call(&mut self, arguments: Value) -> Result<String> {
        (self.handler)(arguments)
    }

    /// The tool as a request names it: `{"type": "function", "function": {...}}`.
    pub fn to_openai(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
    }
}

impl fmt::Debug for Tool<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("parameters", &self.parameters)
            .finish_non_exhaustive()
    }
}

/// The end of `history` that fits in `max_items` messages and, if given, about
/// `max_tokens` tokens (4 characters a token): for the messages of past turns to
/// send again. It never starts with a tool's result whose call was cut off (an
/// assistant message that calls tools is kept with its results, or dropped with
/// them), which servers refuse.
pub fn trim_history(
    history: &[Message],
    max_items: usize,
    max_tokens: Option<usize>,
) -> &[Message] {
    let mut start = history.len().saturating_sub(max_items);
    if let Some(budget) = max_tokens {
        let mut used = 0;
        let mut fits = history.len();
        while fits > start {
            used += history[fits - 1].estimated_tokens();
            if used > budget {
                break;
            }
            fits -= 1;
        }
        start = fits;
    }
    while start < history.len() && history[start].role == "tool" {
        start += 1;
    }
    &history[start..]
}

/// A model behind an OpenAI-compatible `/chat/completions` endpoint.
#[derive(Clone, Debug)]
pub struct Chat {
    base_url: String,
    model: String,
    max_steps: usize,
}

impl Chat {
    /// The model at `base_url` (e.g. `https://api.openai.com/v1`).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            model: model.into(),
            max_steps: DEFAULT_MAX_STEPS,
        }
    }

    /// At most `max_steps` requests to the model in [`Chat::complete_with_tools`]
    /// and [`Chat::stream_with_tools`] (8 by default; at least 1).
    #[must_use]
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps.max(1);
        self
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
        self.ask(messages, &[], false)?.into_text()
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
        self.ask(messages, &[], true)?.into_text()
    }

    /// The model's answer to `messages` when it may call `tools`: each call it
    /// asks for is run and its result sent back, until it answers with text,
    /// which is returned.
    ///
    /// Every message of the loop is appended to `messages`: for each round of
    /// calls the assistant's message (with its `tool_calls`) and one `tool`
    /// message per call, then the final assistant answer. Store
    /// `messages[n..]` (`n` the length before the user's message was pushed) in
    /// the session's history to keep the whole exchange for the next turn.
    ///
    /// A handler's error, a call of a tool that is not in `tools`, and arguments
    /// that are not JSON are told to the model as that call's result (`error:
    /// ...`), not returned. The model not answering with text within
    /// [`Chat::with_max_steps`] requests (8 by default) is an error; the calls of
    /// its last answer are not run, and `messages` then ends with the last
    /// results it was sent.
    pub fn complete_with_tools(
        &self,
        messages: &mut Vec<Message>,
        tools: &mut [Tool<'_>],
    ) -> Result<String> {
        tool_loop(messages, tools, self.max_steps, |messages, specs| {
            self.ask(messages, specs, false)
        })
    }

    /// [`Chat::complete_with_tools`], each answer streamed: the text of the
    /// final answer is emitted ([`crate::emit`]) as it comes, as by
    /// [`Chat::stream`] (and so is any text the model says alongside its tool
    /// calls, which is rare). Tool calls streamed in pieces are put together.
    pub fn stream_with_tools(
        &self,
        messages: &mut Vec<Message>,
        tools: &mut [Tool<'_>],
    ) -> Result<String> {
        tool_loop(messages, tools, self.max_steps, |messages, specs| {
            self.ask(messages, specs, true)
        })
    }

    /// One request: the answer's text and tool calls (at least one of them).
    fn ask(&self, messages: &[Message], tools: &[Value], stream: bool) -> Result<answer::Reply> {
        let request = Request {
            model: &self.model,
            messages,
            tools,
            stream: stream.then_some(true),
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        };
        if !stream {
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
            return answer::reply(response.body())?.checked();
        }
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
        answer.finish_reply(&mut emit)
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
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    tools: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The loop of [`Chat::complete_with_tools`], over `ask` (one request: the
/// messages and the tools, as OpenAI names them).
fn tool_loop(
    messages: &mut Vec<Message>,
    tools: &mut [Tool<'_>],
    max_steps: usize,
    mut ask: impl FnMut(&[Message], &[Value]) -> Result<answer::Reply>,
) -> Result<String> {
    let specs: Vec<Value> = tools.iter().map(Tool::to_openai).collect();
    for step in 1..=max_steps {
        let reply = ask(messages, &specs)?;
        if reply.tool_calls.is_empty() {
            let text = reply.into_text()?;
            messages.push(Message::assistant(text.clone()));
            return Ok(text);
        }
        if step == max_steps {
            break;
        }
        let calls = reply.tool_calls;
        messages.push(Message::assistant_calls(reply.text, calls.clone()));
        for call in &calls {
            let result = run_call(tools, call);
            messages.push(Message::tool(call.id.clone(), result));
        }
    }
    Err(Error::msg(format!(
        "the model still called tools after {max_steps} requests (max_steps)"
    )))
}

/// Runs one call: its result, or `error: ...` for the model to read.
fn run_call(tools: &mut [Tool<'_>], call: &ToolCall) -> String {
    let name = &call.function.name;
    let Some(tool) = tools.iter_mut().find(|tool| tool.name == *name) else {
        return format!("error: unknown tool {name:?}");
    };
    let raw = call.function.arguments.trim();
    let arguments = if raw.is_empty() {
        Ok(json!({}))
    } else {
        serde_json::from_str(raw)
    };
    match arguments {
        Ok(arguments) => match tool.call(arguments) {
            Ok(result) => result,
            Err(e) => format!("error: {e}"),
        },
        Err(e) => format!("error: the arguments are not JSON ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add() -> Tool<'static> {
        Tool::new(
            "add",
            "Adds two numbers.",
            json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}),
            |args| {
                let (Some(a), Some(b)) = (args["a"].as_f64(), args["b"].as_f64()) else {
                    return Err(Error::msg("a and b must be numbers"));
                };
                Ok((a + b).to_string())
            },
        )
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }

    fn calls(calls: Vec<ToolCall>) -> answer::Reply {
        answer::Reply {
            text: String::new(),
            tool_calls: calls,
        }
    }

    fn text(text: &str) -> answer::Reply {
        answer::Reply {
            text: text.into(),
            tool_calls: Vec::new(),
        }
    }

    #[test]
    fn a_plain_message_is_what_it_was() {
        let m = Message::user("hi");
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"role":"user","content":"hi"}"#
        );
        let old: Message = serde_json::from_str(r#"{"role":"assistant","content":"yes"}"#).unwrap();
        assert_eq!(old, Message::assistant("yes"));
    }

    #[test]
    fn tool_messages_are_as_openai_wants_them() {
        let m = Message::assistant_calls("", vec![call("c1", "add", "{\"a\":1}")]);
        let wire = serde_json::to_value(&m).unwrap();
        assert_eq!(
            wire,
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1}"}}
            ]})
        );
        assert_eq!(serde_json::from_value::<Message>(wire).unwrap(), m);
        let r = Message::tool("c1", "3");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"role": "tool", "content": "3", "tool_call_id": "c1"})
        );
        let parts: Message = serde_json::from_value(
            json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
        )
        .unwrap();
        assert_eq!(parts.content, "ab");
    }

    #[test]
    fn the_loop_runs_calls_and_sends_their_results_back() {
        let mut noted = Vec::new();
        let mut sent = Vec::new();
        let mut answers = vec![
            calls(vec![
                call("c1", "add", r#"{"a": 2, "b": 3}"#),
                call("c2", "note", r#"{"text": "x"}"#),
            ]),
            calls(vec![
                call("c3", "add", "{not json"),
                call("c4", "nope", "{}"),
                call("c5", "add", r#"{"a": "x"}"#),
            ]),
            text("done"),
        ]
        .into_iter();
        let mut messages = vec![Message::user("go")];
        {
            let note = Tool::typed(
                "note",
                "Notes text.",
                json!({}),
                |args: serde_json::Map<String, Value>| {
                    noted.push(args["text"].as_str().unwrap_or_default().to_string());
                    Ok("noted".into())
                },
            );
            let mut tools = [add(), note];
            let reply = tool_loop(&mut messages, &mut tools, 8, |messages, specs| {
                sent.push((messages.len(), specs.len()));
                assert_eq!(specs[0]["function"]["name"], "add");
                assert_eq!(specs[0]["type"], "function");
                Ok(answers.next().unwrap())
            })
            .unwrap();
            assert_eq!(reply, "done");
        }
        assert_eq!(noted, ["x"]);
        assert_eq!(sent, [(1, 2), (4, 2), (8, 2)]);
        let roles: Vec<_> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            [
                "user",
                "assistant",
                "tool",
                "tool",
                "assistant",
                "tool",
                "tool",
                "tool",
                "assistant"
            ]
        );
        assert_eq!(messages[2], Message::tool("c1", "5"));
        assert_eq!(messages[3], Message::tool("c2", "noted"));
        assert!(
            messages[5]
                .content
                .starts_with("error: the arguments are not JSON"),
            "{:?}",
            messages[5]
        );
        assert_eq!(messages[6].content, "error: unknown tool \"nope\"");
        assert_eq!(messages[7].content, "error: a and b must be numbers");
        assert_eq!(messages[8], Message::assistant("done"));
    }

    #[test]
    fn a_model_that_never_stops_calling_is_an_error_after_max_steps() {
        let mut messages = vec![Message::user("go")];
        let mut asked = 0;
        let e = tool_loop(&mut messages, &mut [add()], 3, |_, _| {
            asked += 1;
            Ok(calls(vec![call(
                &format!("c{asked}"),
                "add",
                r#"{"a":1,"b":1}"#,
            )]))
        })
        .unwrap_err();
        assert_eq!(asked, 3);
        assert!(e.to_string().contains("after 3 requests"), "{e}");
        // The calls of the last answer were not run, nor kept.
        assert_eq!(messages.len(), 5);
        assert_eq!(messages.last().unwrap().role, "tool");
    }

    #[test]
    fn trimming_keeps_calls_with_their_results() {
        let history = vec![
            Message::user("one"),
            Message::assistant_calls("", vec![call("c1", "add", "{}"), call("c2", "add", "{}")]),
            Message::tool("c1", "1"),
            Message::tool("c2", "2"),
            Message::assistant("two"),
            Message::user("three"),
            Message::assistant("four"),
        ];
        assert_eq!(trim_history(&history, 10, None).len(), 7);
        assert_eq!(trim_history(&history, 6, None)[0], history[1]);
        // 5 would start at a result: both results go.
        assert_eq!(trim_history(&history, 5, None)[0], history[4]);
        assert_eq!(trim_history(&history, 4, None)[0], history[4]);
        assert_eq!(trim_history(&history, 0, None).len(), 0);
        // "two", "three", "four": 5, 6 and 5 tokens.
        assert_eq!(trim_history(&history, 10, Some(16)).len(), 3);
        assert_eq!(trim_history(&history, 10, Some(15)).len(), 2);
        assert_eq!(trim_history(&history, 10, Some(0)).len(), 0);
    }
}
