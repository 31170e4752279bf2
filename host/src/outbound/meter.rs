//! Reading the tokens a model's answer used, as the answer passes to the plugin.
//!
//! The body is not changed and never held back: each frame goes on to the plugin
//! as it came, and a copy of its bytes feeds a small parser. An event stream
//! (`text/event-stream`) is read line by line, and each `data:` line that names
//! `usage` is parsed as JSON; any other answer is kept (up to [`KEPT`] bytes)
//! and parsed once it ends. What is read, in OpenAI's chat completions and
//! Responses forms and in Anthropic's messages form, plain or streamed:
//!
//! | | input | output | cached |
//! |---|---|---|---|
//! | chat completions | `prompt_tokens` | `completion_tokens` | `prompt_tokens_details.cached_tokens` |
//! | Responses | `input_tokens` | `output_tokens` | `input_tokens_details.cached_tokens` |
//! | Anthropic | `input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens` | `output_tokens` | `cache_read_input_tokens` |
//!
//! `usage` is looked for at the top of each JSON object and under `message`
//! (Anthropic's `message_start`) and `response` (Responses' `response.completed`);
//! a field seen several times (Anthropic's `message_delta` counts up) keeps its
//! largest value. An answer with no usage at all is estimated and marked so:
//! about four bytes per token of the request's body and of the answer's text (in
//! a stream, the text of its `content`, `text` and `delta` strings, not the
//! event framing around them; a plain answer, its bytes).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde_json::Value;

use super::spend::TurnSpend;
use crate::config::Meter;
use crate::store::spend::ModelCount;

/// Bytes of a plain (not streamed) answer kept for reading its usage.
pub(super) const KEPT: usize = 1 << 20;
/// Longest event-stream line read; a longer one is skipped.
const LINE: usize = 256 << 10;
/// Bytes per token of an estimate.
const BYTES_PER_TOKEN: u64 = 4;

/// What an answer said about its tokens so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) input: u64,
    pub(super) output: u64,
    pub(super) cached: u64,
    pub(super) model: Option<String>,
    /// True once any usage was read.
    pub(super) any: bool,
}

impl Found {
    /// Takes what `value` (one JSON object of the answer) says.
    pub(super) fn read(&mut self, meter: Meter, value: &Value) {
        for holder in [value, &value["message"], &value["response"]] {
            if self.model.is_none()
                && let Some(model) = holder["model"].as_str()
            {
                self.model = Some(model.chars().take(128).collect());
            }
            let usage = &holder["usage"];
            if !usage.is_object() {
                continue;
            }
            let n = |v: &Value| v.as_u64();
            let cache_read = n(&usage["cache_read_input_tokens"]);
            let input = match meter {
                Meter::Anthropic => n(&usage["input_tokens"]).map(|i| {
                    i + cache_read.unwrap_or(0)
                        + n(&usage["cache_creation_input_tokens"]).unwrap_or(0)
                }),
                Meter::OpenAi => n(&usage["prompt_tokens"]).or_else(|| n(&usage["input_tokens"])),
            };
            let output = n(&usage["completion_tokens"]).or_else(|| n(&usage["output_tokens"]));
            let cached = n(&usage["prompt_tokens_details"]["cached_tokens"])
                .or_else(|| n(&usage["input_tokens_details"]["cached_tokens"]))
                .or(cache_read);
            for (field, seen) in [
                (&mut self.input, input),
                (&mut self.output, output),
                (&mut self.cached, cached),
            ] {
                if let Some(seen) = seen {
                    *field = (*field).max(seen);
                    self.any = true;
                }
            }
        }
    }
}

/// Reads usage from the bytes of an answer, fed in order.
pub(super) struct Reader {
    meter: Meter,
    stream: bool,
    /// An event stream: the current line; a plain answer: its bytes so far.
    buffer: Vec<u8>,
    /// The current line is too long: skipped up to its end.
    skipping: bool,
    bytes: u64,
    /// A stream's text bytes (for an estimate).
    text: u64,
    found: Found,
}

impl Reader {
    pub(super) fn new(meter: Meter, content_type: Option<&str>) -> Self {
        let stream = content_type.is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
        Self {
            meter,
            stream,
            buffer: Vec::new(),
            skipping: false,
            bytes: 0,
            text: 0,
            found: Found::default(),
        }
    }

    pub(super) fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        if !self.stream {
            let room = KEPT.saturating_sub(self.buffer.len());
            self.buffer
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            return;
        }
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            let ends = piece.ends_with(b"\n");
            if !self.skipping {
                if self.buffer.len() + piece.len() > LINE {
                    self.skipping = true;
                    self.buffer.clear();
                } else {
                    self.buffer.extend_from_slice(piece);
                }
            }
            if ends {
                if !self.skipping {
                    let line = std::mem::take(&mut self.buffer);
                    self.line(&line);
                }
                self.skipping = false;
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        self.text += text_bytes(data);
        // Most chunks carry text only: parsed only if they may name a usage or
        // the model before it is known.
        let wanted = contains(data, b"\"usage\"")
            || (self.found.model.is_none() && contains(data, b"\"model\""));
        if !wanted {
            return;
        }
        if let Ok(value) = serde_json::from_slice::<Value>(data.trim_ascii()) {
            self.found.read(self.meter, &value);
        }
    }

    /// What the whole answer used: read, or estimated from `sent` request bytes
    /// and the answer's bytes.
    pub(super) fn finish(mut self, sent: u64) -> (ModelCount, Option<String>) {
        if self.stream {
            let rest = std::mem::take(&mut self.buffer);
            if !self.skipping {
                self.line(&rest);
            }
        } else if let Ok(value) = serde_json::from_slice::<Value>(&self.buffer) {
            self.found.read(self.meter, &value);
        }
        let found = self.found;
        if found.any {
            let count = ModelCount::call(found.input, found.output, found.cached, false);
            return (count, found.model);
        }
        let estimate = |bytes: u64| bytes.div_ceil(BYTES_PER_TOKEN);
        let answer = if self.stream { self.text } else { self.bytes };
        let count = ModelCount::call(estimate(sent), estimate(answer), 0, true);
        (count, found.model)
    }
}

/// Bytes of the text an event carries: the string values of its `content`,
/// `text` and `delta` keys (chat completions, Anthropic, Responses), found by a
/// scan rather than parsing every event.
fn text_bytes(data: &[u8]) -> u64 {
    let mut total = 0;
    for key in [&b"\"content\""[..], b"\"text\"", b"\"delta\""] {
        let mut at = 0;
        while let Some(found) = find(&data[at..], key) {
            at += found + key.len();
            let rest = &data[at..];
            let value = rest
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .filter(|&i| rest[i] == b':')
                .and_then(|i| {
                    let after = &rest[i + 1..];
                    after
                        .iter()
                        .position(|b| !b.is_ascii_whitespace())
                        .filter(|&j| after[j] == b'"')
                        .map(|j| &after[j + 1..])
                });
            let Some(value) = value else {
                continue;
            };
            // Up to the closing quote that is not escaped.
            let mut escaped = false;
            for &b in value {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => break,
                    _ => {}
                }
                total += 1;
            }
        }
    }
    total
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A metered answer's body: passes every frame on as it comes and records the
/// call's tokens once the body ends (or is dropped).
pub(super) struct Metered<B> {
    pub(super) inner: B,
    pub(super) reader: Option<Reader>,
    pub(super) spend: Arc<TurnSpend>,
    /// The allowed origin, as configured (the metric's label).
    pub(super) origin: String,
    /// Bytes of the request body sent (for an estimate).
    pub(super) sent: Arc<std::sync::atomic::AtomicU64>,
    /// The request's span in traces, which gets the tokens.
    pub(super) span: tracing::Span,
}

impl<B> Metered<B> {
    fn record(&mut self) {
        if let Some(reader) = self.reader.take() {
            let sent = self.sent.load(std::sync::atomic::Ordering::Relaxed);
            let (count, model) = reader.finish(sent);
            self.span.record("model.input_tokens", count.input_tokens);
            self.span.record("model.output_tokens", count.output_tokens);
            self.spend.record(&self.origin, model, count);
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(reader)) = (frame.data_ref(), self.reader.as_mut()) {
                    reader.feed(data);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.record(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        // An answer the plugin stopped reading was paid all the same.
        self.record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(meter: Meter, content_type: &str, chunks: &[&str]) -> (ModelCount, Option<String>) {
        let mut reader = Reader::new(meter, Some(content_type));
        for chunk in chunks {
            reader.feed(chunk.as_bytes());
        }
        reader.finish(400)
    }

    #[test]
    fn openai_chat_completions_plain_and_streamed() {
        let plain = r#"{"model":"gpt-4o-mini","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":8}}}"#;
        let (count, model) = read(
            Meter::OpenAi,
            "application/json",
            &[&plain[..20], &plain[20..]],
        );
        assert_eq!(count, ModelCount::call(12, 3, 8, false));
        assert_eq!(model.as_deref(), Some("gpt-4o-mini"));
        let events = "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"h\"}}]}\n\ndata: {\"choices\":[],\"usa";
        let rest = "ge\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        let (count, model) = read(
            Meter::OpenAi,
            "text/event-stream; charset=utf-8",
            &[events, rest],
        );
        assert_eq!(count, ModelCount::call(5, 2, 0, false));
        assert_eq!(model.as_deref(), Some("m"));
    }

    #[test]
    fn openai_responses_plain_and_streamed() {
        let plain = r#"{"model":"gpt-5","output":[],"usage":{"input_tokens":30,"output_tokens":7,"input_tokens_details":{"cached_tokens":10}}}"#;
        let (count, _) = read(Meter::OpenAi, "application/json", &[plain]);
        assert_eq!(count, ModelCount::call(30, 7, 10, false));
        let events = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"usage\":{\"input_tokens\":9,\"output_tokens\":4}}}\n\n";
        let (count, model) = read(Meter::OpenAi, "text/event-stream", &[events]);
        assert_eq!(count, ModelCount::call(9, 4, 0, false));
        assert_eq!(model.as_deref(), Some("gpt-5"));
    }

    #[test]
    fn anthropic_messages_plain_and_streamed() {
        let plain = r#"{"model":"claude-x","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":5,"output_tokens":20}}"#;
        let (count, _) = read(Meter::Anthropic, "application/json", &[plain]);
        assert_eq!(count, ModelCount::call(115, 20, 100, false));
        let events = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n",
        );
        let (count, model) = read(Meter::Anthropic, "text/event-stream", &[events]);
        assert_eq!(count, ModelCount::call(25, 15, 0, false));
        assert_eq!(model.as_deref(), Some("claude-x"));
    }

    #[test]
    fn an_answer_without_usage_is_estimated_from_its_bytes_never_an_error() {
        for (content_type, body) in [
            (
                "application/json",
                "{\"choices\":[{\"message\":{\"content\":\"12345678\"}}]}",
            ),
            ("application/json", "not json at all {{{"),
        ] {
            let (count, _) = read(Meter::OpenAi, content_type, &[body]);
            assert_eq!(count.estimated, 1, "{body}");
            assert_eq!(count.input_tokens, 100, "400 bytes sent: {body}");
            assert_eq!(
                count.output_tokens,
                (body.len() as u64).div_ceil(4),
                "{body}"
            );
        }
    }

    #[test]
    fn an_overlong_event_line_is_skipped_and_the_next_read() {
        let long = format!(
            "data: {{\"usage\":{{\"prompt_tokens\":1}},\"x\":\"{}\"}}\n",
            "a".repeat(LINE)
        );
        let next = "data: {\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n";
        let (count, _) = read(Meter::OpenAi, "text/event-stream", &[&long, next]);
        assert_eq!(count, ModelCount::call(7, 1, 0, false));
    }
}
