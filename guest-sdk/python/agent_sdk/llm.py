"""A chat-completions client for OpenAI-compatible servers, over `agent_sdk.http`.

The plugin holds no key: the operator lists the model's origin in the plugin's
`[[plugin.outbound]]` with the key as a secret header, and the host adds it. The
base URL and the model come from the plugin's env (`MODEL_URL`, `MODEL`).

    from agent_sdk.llm import Chat
    chat = Chat.from_env()
    reply = chat.complete([{"role": "user", "content": "Hello"}])   # whole
    reply = chat.stream([{"role": "user", "content": "Hello"}])     # emitted piece by piece

Both raise `HttpError` when the model cannot be reached, answers an error, or
answers no text (never an empty reply as if the model had said it).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional

from . import emit, http

__all__ = ["Chat"]

Message = Dict[str, str]


class Chat:
    """A model behind an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, base_url: str, model: str):
        self.base_url = base_url.rstrip("/")
        self.model = model

    @classmethod
    def from_env(cls) -> "Chat":
        """The model named by the plugin's `MODEL_URL` and `MODEL` variables."""
        missing = [n for n in ("MODEL_URL", "MODEL") if not os.environ.get(n)]
        if missing:
            raise http.HttpError(f"{', '.join(missing)} not set in the plugin's env (see [[plugin]] env)")
        return cls(os.environ["MODEL_URL"], os.environ["MODEL"])

    def complete(self, messages: List[Message]) -> str:
        """The model's answer to `messages` (dicts with `role` and `content`), whole."""
        reply = http.post_json(self._url(), {"model": self.model, "messages": messages})
        if not reply.ok:
            raise http.HttpError(f"the model answered {reply.status} ({reply.text()[:200]})")
        return _completion(reply.text())

    def stream(self, messages: List[Message]) -> str:
        """The model's answer to `messages`, streamed: each piece of it is emitted
        (`agent_sdk.emit`) as the model sends it, so a caller that asked for a
        stream sees it come; returns the whole answer.

        It asks for an event stream with the token usage at its end
        (`stream_options.include_usage`, which servers that do not know it
        ignore). A server that does not stream and answers one JSON completion
        is fine too: its answer is emitted in one piece."""
        request = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = [("content-type", "application/json"), ("accept", "text/event-stream, application/json")]
        answer = _Answer(emit)
        http.send_lines("POST", self._url(), headers, json.dumps(request).encode(), answer.line)
        return answer.finish()

    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"


def _completion(body: str) -> str:
    """The text of a whole JSON completion (`choices[0].message.content`)."""
    try:
        completion = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise http.HttpError(f"the model's answer is not a chat completion ({e}): {body[:200]}") from None
    if not isinstance(completion, dict):
        raise http.HttpError(f"the model's answer is not a chat completion: {body[:200]}")
    _raise_error(completion)
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise http.HttpError("the model answered no choice")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    return _text((message or {}).get("content") if isinstance(message, dict) else None)


def _text(content: Any) -> str:
    if content is not None and not isinstance(content, str):
        raise http.HttpError(f"the model's answer has content that is not text: {str(content)[:200]}")
    if not content:
        raise http.HttpError("the model's answer has no text")
    return content


def _raise_error(value: Dict[str, Any]) -> None:
    """Raises the error a server put in its answer (`{"error": {"message": ...}}`)."""
    error = value.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else None
        raise http.HttpError(f"the model answered an error: {str(message or error)[:200]}")


class _Answer:
    """An answer read line by line, in either form: an event stream of completion
    chunks (`data: {...}` events, then `data: [DONE]`), or a whole JSON completion
    (a server that does not stream). A JSON completion starts with `{`, which no
    event-stream line can."""

    def __init__(self, piece: Callable[[str], None]):
        self.piece = piece
        self.form: Optional[str] = None
        self.pending: List[str] = []
        self.first = ""
        self.events = 0
        self.text: List[str] = []

    def line(self, line: str) -> None:
        if self.form is None:
            if not line.strip():
                return
            self.first = line[:200]
            self.form = "json" if line.lstrip().startswith("{") else "events"
        if self.form == "json":
            self.pending.append(line)
        elif not line:
            self._dispatch()
        elif line.startswith("data:"):
            # Other fields (event:, id:, retry:) and comments (:) carry no text.
            data = line[5:]
            self.pending.append(data[1:] if data.startswith(" ") else data)

    def finish(self) -> str:
        if self.form is None:
            raise http.HttpError("the model's answer is empty")
        if self.form == "json":
            text = _completion("\n".join(self.pending))
            self.piece(text)
            return text
        self._dispatch()
        if self.events == 0:
            raise http.HttpError(f"the model's answer is neither a chat completion nor an event stream: {self.first}")
        return _text("".join(self.text))

    def _dispatch(self) -> None:
        data = "\n".join(self.pending).strip()
        self.pending = []
        if not data:
            return
        self.events += 1
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise http.HttpError(
                f"the model's event stream has an event that is not a completion chunk ({e}): {data[:200]}"
            ) from None
        if not isinstance(chunk, dict):
            raise http.HttpError(f"the model's event stream has an event that is not a completion chunk: {data[:200]}")
        _raise_error(chunk)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if content is not None and not isinstance(content, str):
                raise http.HttpError(f"the model's event stream has content that is not text: {str(content)[:200]}")
            if content:
                self.piece(content)
                self.text.append(content)
