//! Reading a model's answer: a whole JSON completion, or an event stream of
//! completion chunks (`data: {...}` events, then `data: [DONE]`), read line by
//! line as it arrives. Which form came is seen from its first byte: a JSON
//! completion starts with `{`, which no event-stream line can (it would be a
//! field named `{...`, which the format ignores).
//!
//! An answer may call tools instead of (or besides) saying something: a whole
//! completion carries `message.tool_calls`; a stream carries them in pieces,
//! `delta.tool_calls[i]` by `index`, the first with the call's `id` and
//! function `name`, the next ones with more of its `arguments`, assembled here.

use serde::Deserialize;
use serde_json::Value;

use super::{FunctionCall, ToolCall};
use crate::{Error, Result};

/// What the model answered: its text (maybe empty when it calls tools) and the
/// tools it calls.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Reply {
    pub(super) text: String,
    pub(super) tool_calls: Vec<ToolCall>,
}

impl Reply {
    /// The text, for a caller that asked for text only: an answer without text
    /// is an error, never an empty reply.
    pub(super) fn into_text(self) -> Result<String> {
        not_empty(self.text)
    }

    /// An answer with neither text nor a tool call is an error.
    pub(super) fn checked(self) -> Result<Self> {
        if self.tool_calls.is_empty() {
            not_empty(self.text.clone())?;
        }
        Ok(self)
    }
}

/// The text of a whole JSON completion (`choices[0].message.content`).
#[cfg(test)]
fn completion(body: &[u8]) -> Result<String> {
    reply(body)?.into_text()
}

/// A whole JSON completion: its text and tool calls (`choices[0].message`).
pub(super) fn reply(body: &[u8]) -> Result<Reply> {
    #[derive(Deserialize)]
    struct Completion {
        #[serde(default)]
        choices: Vec<Choice>,
        error: Option<Value>,
    }
    #[derive(Deserialize)]
    struct Choice {
        message: Option<Content>,
    }
    let completion: Completion = serde_json::from_slice(body).map_err(|e| {
        Error::Http(format!(
            "the model's answer is not a chat completion ({e}): {}",
            start_of(&String::from_utf8_lossy(body))
        ))
    })?;
    if let Some(error) = completion.error {
        return Err(failed(&error));
    }
    let message = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| Error::Http("the model answered no choice".into()))?
        .message;
    let Some(message) = message else {
        return Ok(Reply::default());
    };
    let tool_calls = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(n, call)| {
            let function = call.function.unwrap_or_default();
            ToolCall::function(
                call.id.unwrap_or_else(|| format!("call_{n}")),
                function.name.unwrap_or_default(),
                function.arguments.unwrap_or_default(),
            )
        })
        .collect();
    Ok(Reply {
        text: message.content.unwrap_or_default(),
        tool_calls,
    })
}

/// A message or a delta: its text and the tools it calls (or pieces of them).
#[derive(Deserialize)]
struct Content {
    content: Option<String>,
    tool_calls: Option<Vec<CallPiece>>,
}

/// A tool call, or a piece of one in a stream (found by its `index`).
#[derive(Deserialize)]
struct CallPiece {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionPiece>,
}

#[derive(Default, Deserialize)]
struct FunctionPiece {
    name: Option<String>,
    arguments: Option<String>,
}

/// An answer read line by line, in either form.
#[derive(Default)]
pub(super) struct Answer {
    form: Option<Form>,
    /// The data of the event being read (event stream), or the lines so far (JSON).
    pending: String,
    /// The start of the first line, for an error about an answer in neither form.
    first: String,
    /// Events with data so far.
    events: usize,
    text: String,
    /// The tool calls streamed so far, by their index.
    calls: Vec<(usize, ToolCall)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Events,
    Json,
}

impl Answer {
    /// Takes the next line of the body (without its line end); `piece` gets each
    /// piece of text of an event stream as soon as its event is complete.
    pub(super) fn line(
        &mut self,
        line: &str,
        piece: &mut impl FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let form = match self.form {
            Some(form) => form,
            None if line.trim().is_empty() => return Ok(()),
            None => {
                self.first = start_of(line);
                let form = if line.trim_start().starts_with('{') {
                    Form::Json
                } else {
                    Form::Events
                };
                *self.form.insert(form)
            }
        };
        match form {
            Form::Json => {
                self.pending.push_str(line);
                self.pending.push('\n');
            }
            Form::Events if line.is_empty() => self.dispatch(piece)?,
            Form::Events => {
                // Other fields (`event:`, `id:`, `retry:`) and comments (`:`) carry
                // no text.
                if let Some(data) = line.strip_prefix("data:") {
                    if !self.pending.is_empty() {
                        self.pending.push('\n');
                    }
                    self.pending
                        .push_str(data.strip_prefix(' ').unwrap_or(data));
                }
            }
        }
        Ok(())
    }

    /// The whole answer, once the body ended; a JSON completion's text goes to
    /// `piece` in one piece. An empty answer is an error.
    #[cfg(test)]
    fn finish(self, piece: &mut impl FnMut(&str) -> Result<()>) -> Result<String> {
        let reply = self.finish_reply(piece)?;
        reply.into_text()
    }

    /// The whole answer with its tool calls, once the body ended; a JSON
    /// completion's text goes to `piece` in one piece. An answer with neither
    /// text nor a tool call is an error.
    pub(super) fn finish_reply(
        mut self,
        piece: &mut impl FnMut(&str) -> Result<()>,
    ) -> Result<Reply> {
        match self.form {
            None => Err(Error::Http("the model's answer is empty".into())),
            Some(Form::Json) => {
                let reply = reply(self.pending.as_bytes())?.checked()?;
                if !reply.text.is_empty() {
                    piece(&reply.text)?;
                }
                Ok(reply)
            }
            Some(Form::Events) => {
                self.dispatch(piece)?;
                if self.events == 0 {
                    return Err(Error::Http(format!(
                        "the model's answer is neither a chat completion nor an event \
                         stream: {}",
                        self.first
                    )));
                }
                self.calls.sort_by_key(|(index, _)| *index);
                Reply {
                    text: self.text,
                    tool_calls: self.calls.into_iter().map(|(_, call)| call).collect(),
                }
                .checked()
            }
        }
    }

    /// Handles the event whose data was read: a completion chunk, `[DONE]`, or an
    /// error the server sent in the stream.
    fn dispatch(&mut self, piece: &mut impl FnMut(&str) -> Result<()>) -> Result<()> {
        #[derive(Deserialize)]
        struct Chunk {
            // `null` in some servers' usage chunk.
            #[serde(default)]
            choices: Option<Vec<Delta>>,
            error: Option<Value>,
        }
        #[derive(Deserialize)]
        struct Delta {
            delta: Option<Content>,
        }
        let data = std::mem::take(&mut self.pending);
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        self.events += 1;
        if data == "[DONE]" {
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
            Error::Http(format!(
                "the model's event stream has an event that is not a completion chunk \
                 ({e}): {}",
                start_of(data)
            ))
        })?;
        if let Some(error) = chunk.error {
            return Err(failed(&error));
        }
        for choice in chunk.choices.into_iter().flatten() {
            let Some(delta) = choice.delta else {
                continue;
            };
            if let Some(text) = delta.content
                && !text.is_empty()
            {
                piece(&text)?;
                self.text.push_str(&text);
            }
            for call in delta.tool_calls.into_iter().flatten() {
                self.call_piece(call);
            }
        }
        Ok(())
    }

    /// Adds a piece of a streamed tool call: a new index starts a call, the next
    /// pieces of that index add to its id, name and arguments.
    fn call_piece(&mut self, piece: CallPiece) {
        let index = piece.index.unwrap_or(self.calls.len());
        let at = match self.calls.iter().position(|(i, _)| *i == index) {
            Some(at) => at,
            None => {
                let id = format!("call_{index}");
                self.calls
                    .push((index, ToolCall::function(id, String::new(), String::new())));
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[at].1;
        if let Some(id) = piece.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = piece.function {
            // The name comes whole in the call's first piece; a server that says
            // it again in the next ones is not taken to lengthen it.
            if let Some(name) = function.name
                && name != call.function.name
            {
                call.function.name.push_str(&name);
            }
            if let Some(arguments) = function.arguments {
                call.function.arguments.push_str(&arguments);
            }
        }
    }
}

impl ToolCall {
    fn function(id: String, name: String, arguments: String) -> Self {
        Self {
            id,
            kind: "function".into(),
            function: FunctionCall { name, arguments },
        }
    }
}

fn not_empty(text: String) -> Result<String> {
    if text.is_empty() {
        return Err(Error::Http("the model's answer has no text".into()));
    }
    Ok(text)
}

/// An error the server put in its answer (`{"error": {"message": ...}}`).
fn failed(error: &Value) -> Error {
    let message = error["message"]
        .as_str()
        .map_or_else(|| error.to_string(), str::to_string);
    Error::Http(format!(
        "the model answered an error: {}",
        start_of(&message)
    ))
}

/// The first 200 characters of `text`, for a message.
fn start_of(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `body` line by line as `send_lines` hands it over; the pieces and
    /// the answer.
    fn read(body: &str) -> (Vec<String>, Result<String>) {
        let mut pieces = Vec::new();
        let mut answer = Answer::default();
        let mut piece = |p: &str| {
            pieces.push(p.to_string());
            Ok(())
        };
        for line in body.split('\n') {
            if let Err(e) = answer.line(line.trim_end_matches('\r'), &mut piece) {
                return (pieces, Err(e));
            }
        }
        let result = answer.finish(&mut piece);
        (pieces, result)
    }

    #[test]
    fn an_event_stream_gives_each_piece_as_its_event_ends() {
        let body = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                    : a comment\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"Rye\"}}]}\r\n\r\n\
                    event: message\nid: 3\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\" flour\"},\"finish_reason\":null}]}\n\n\
                    data: {\"choices\":[],\"usage\":{\"total_tokens\":9}}\n\n\
                    data: {\"choices\":null,\"usage\":{\"total_tokens\":9}}\n\n\
                    data: [DONE]\n\n";
        let (pieces, answer) = read(body);
        assert_eq!(pieces, ["Rye", " flour"]);
        assert_eq!(answer.unwrap(), "Rye flour");
    }

    #[test]
    fn a_last_event_without_its_blank_line_counts() {
        let (pieces, answer) = read("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}");
        assert_eq!(pieces, ["hi"]);
        assert_eq!(answer.unwrap(), "hi");
    }

    #[test]
    fn a_plain_completion_is_one_piece() {
        let body = "{\n  \"choices\": [{\"message\": {\"role\": \"assistant\", \"content\": \"Rye flour\"}}]\n}\n";
        let (pieces, answer) = read(body);
        assert_eq!(pieces, ["Rye flour"]);
        assert_eq!(answer.unwrap(), "Rye flour");
    }

    #[test]
    fn an_empty_answer_is_an_error() {
        for body in [
            "",
            "\n\n",
            "data: [DONE]\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\ndata: [DONE]\n\n",
            "{\"choices\":[{\"message\":{\"content\":\"\"}}]}",
            "{\"choices\":[{\"message\":{\"content\":null}}]}",
            "{\"choices\":[]}",
        ] {
            let (pieces, answer) = read(body);
            assert!(pieces.is_empty(), "{body:?}: {pieces:?}");
            assert!(
                matches!(answer, Err(Error::Http(_))),
                "{body:?}: {answer:?}"
            );
        }
    }

    #[test]
    fn what_is_neither_form_is_an_error() {
        for body in [
            "xxxxxxxxxx",
            "<html>bad gateway</html>",
            "data: not json\n\n",
            "{\"choices\": [",
            "data: {\"choices\":[{\"delta\":{\"content\":5}}]}\n\n",
        ] {
            let (_, answer) = read(body);
            assert!(
                matches!(answer, Err(Error::Http(_))),
                "{body:?}: {answer:?}"
            );
        }
    }

    #[test]
    fn an_error_in_the_answer_is_an_error() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"Rye\"}}]}\n\n\
                    data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        let (pieces, answer) = read(body);
        assert_eq!(pieces, ["Rye"]);
        let e = answer.unwrap_err().to_string();
        assert!(e.contains("overloaded"), "{e}");
        let (_, answer) = read("{\"error\":{\"message\":\"no such model\"}}");
        assert!(answer.unwrap_err().to_string().contains("no such model"));
    }

    /// Reads `body` as a reply with its tool calls; the pieces and the reply.
    fn read_reply(body: &str) -> (Vec<String>, Result<Reply>) {
        let mut pieces = Vec::new();
        let mut answer = Answer::default();
        let mut piece = |p: &str| {
            pieces.push(p.to_string());
            Ok(())
        };
        for line in body.split('\n') {
            answer.line(line, &mut piece).unwrap();
        }
        let result = answer.finish_reply(&mut piece);
        (pieces, result)
    }

    #[test]
    fn streamed_tool_calls_are_assembled_by_index() {
        let body = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"add\",\"arguments\":\"\"}}]}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"function\":{\"name\":\"note\",\"arguments\":\"{}\"}}]}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" 2}\"}}]}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
                    data: [DONE]\n\n";
        let (pieces, reply) = read_reply(body);
        assert!(pieces.is_empty(), "{pieces:?}");
        let reply = reply.unwrap();
        assert_eq!(reply.text, "");
        let calls: Vec<_> = reply
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.function.name.as_str(),
                    c.function.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [("call_a", "add", "{\"a\": 2}"), ("call_b", "note", "{}")]
        );
        assert_eq!(reply.tool_calls[0].kind, "function");
    }

    #[test]
    fn a_whole_completion_with_tool_calls() {
        let body = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}";
        let (pieces, reply) = read_reply(body);
        assert!(pieces.is_empty(), "{pieces:?}");
        let reply = reply.unwrap();
        assert_eq!(reply.tool_calls.len(), 1);
        assert_eq!(reply.tool_calls[0].id, "c1");
        assert_eq!(reply.tool_calls[0].function.arguments, "{\"a\":1}");
        // Text only, it is an error: the caller did not offer tools.
        assert!(completion(body.as_bytes()).is_err());
        // Neither text nor a call.
        let (_, reply) = read_reply("{\"choices\":[{\"message\":{\"content\":null}}]}");
        assert!(reply.is_err());
    }
}
