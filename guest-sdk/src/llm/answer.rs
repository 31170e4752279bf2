//! Reading a model's answer: a whole JSON completion, or an event stream of
//! completion chunks (`data: {...}` events, then `data: [DONE]`), read line by
//! line as it arrives. Which form came is seen from its first byte: a JSON
//! completion starts with `{`, which no event-stream line can (it would be a
//! field named `{...`, which the format ignores).

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// The text of a whole JSON completion (`choices[0].message.content`).
pub(super) fn completion(body: &[u8]) -> Result<String> {
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
    let text = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| Error::Http("the model answered no choice".into()))?
        .message
        .and_then(|m| m.content)
        .unwrap_or_default();
    not_empty(text)
}

/// A message or a delta: only its text matters here (a tool call has none).
#[derive(Deserialize)]
struct Content {
    content: Option<String>,
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
    pub(super) fn finish(mut self, piece: &mut impl FnMut(&str) -> Result<()>) -> Result<String> {
        match self.form {
            None => Err(Error::Http("the model's answer is empty".into())),
            Some(Form::Json) => {
                let text = completion(self.pending.as_bytes())?;
                piece(&text)?;
                Ok(text)
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
                not_empty(self.text)
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
            if let Some(text) = choice.delta.and_then(|d| d.content)
                && !text.is_empty()
            {
                piece(&text)?;
                self.text.push_str(&text);
            }
        }
        Ok(())
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
}
