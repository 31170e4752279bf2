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

Tools (OpenAI's function calling): a `Tool` is a name, a description, a JSON
Schema of its arguments and a handler; `@tool` makes one of a function, its
schema from the type hints and its description from the docstring.
`complete_with_tools` (and `stream_with_tools`) send the tools, run each call
the model asks for, send the results back, and so on until the model answers
with text (at most `max_steps` requests, 8 by default, else `MaxStepsError`).
Every message of the loop (the assistant's calls, one `tool` message per call,
the final answer) is appended to the caller's `messages` list, so the plugin
stores them for the next turn; `trim_history` cuts a history to a budget without
separating calls from their results.

    @tool
    def add(a: float, b: float) -> str:
        "Adds two numbers."
        return str(a + b)

    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    start = len(messages) - 1
    reply = chat.complete_with_tools(messages, [add])
    session.append(*messages[start:])    # the question, the call, its result, the answer
"""

from __future__ import annotations

import inspect
import json
import os
import typing
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import emit, http

__all__ = ["Chat", "Tool", "tool", "MaxStepsError", "trim_history", "DEFAULT_MAX_STEPS"]

# A message: {"role", "content"}, and for tools "tool_calls" (an assistant's),
# "tool_call_id" (a result's) and "name", present only when they apply.
Message = Dict[str, Any]

DEFAULT_MAX_STEPS = 8


class MaxStepsError(http.HttpError):
    """The model still called tools after `max_steps` requests."""


class Tool:
    """A function the model may call: `name`, `description`, `parameters` (a
    JSON Schema of its arguments, an object schema) and `handler`, which gets
    the arguments (parsed JSON, a dict) and returns the text the model reads.

    An exception the handler raises goes to the model as `error: ...` and the
    loop goes on (so do arguments that are not JSON and calls of a tool that
    does not exist). A result that is not a string is sent as JSON."""

    def __init__(self, name: str, description: str, parameters: Dict[str, Any], handler: Callable[[Any], Any]):
        self.name = name
        self.description = description
        self.parameters = parameters
        self.handler = handler

    def call(self, arguments: Any) -> str:
        """Runs the handler on `arguments`; its result as text."""
        result = self.handler(arguments)
        return result if isinstance(result, str) else json.dumps(result)

    def to_openai(self) -> Dict[str, Any]:
        """The tool as a request names it: {"type": "function", "function": {...}}."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def _schema(hint: Any) -> Tuple[Dict[str, Any], bool]:
    """The JSON Schema of a type hint, and whether it may be None."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint)]
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        rest = [a for a in args if a is not type(None)]
        schema, _ = _schema(rest[0]) if len(rest) == 1 else ({}, False)
        return schema, len(rest) < len(args)
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}, False
    if origin in (list, tuple, set, Sequence, typing.List) or hint in (List, Sequence):
        schema = {"type": "array"}
        if args and args[0] is not Ellipsis:
            schema["items"] = _schema(args[0])[0]
        return schema, False
    if origin is dict or hint is Dict:
        return {"type": "object"}, False
    return {}, False


def tool(function: Optional[Callable[..., Any]] = None, *, name: Optional[str] = None, description: Optional[str] = None):
    """Makes a `Tool` of a function (`@tool` or `@tool(name=..., description=...)`):
    its parameters' type hints make the schema (str, int, float, bool, list and
    List[X], dict, Optional[X]); parameters without a default that are not
    Optional are required; the docstring is the description. The model's
    arguments are passed by name."""

    def make(function: Callable[..., Any]) -> Tool:
        hints = typing.get_type_hints(function)
        properties: Dict[str, Any] = {}
        required: List[str] = []
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            schema, optional = _schema(hints.get(parameter.name, Any))
            properties[parameter.name] = schema
            if parameter.default is parameter.empty and not optional:
                required.append(parameter.name)
        parameters = {"type": "object", "properties": properties, "required": required}

        def handler(arguments: Any) -> Any:
            if not isinstance(arguments, dict):
                raise TypeError(f"the arguments are not an object: {json.dumps(arguments)[:200]}")
            return function(**arguments)

        made = Tool(name or function.__name__, description or inspect.getdoc(function) or "", parameters, handler)
        made.function = function
        return made

    return make(function) if function is not None else make


def trim_history(history: List[Message], max_items: int, max_tokens: Optional[int] = None) -> List[Message]:
    """The end of `history` that fits in `max_items` messages and, if given,
    about `max_tokens` tokens (4 characters a token, 4 a message): for the
    messages of past turns to send again. It never starts with a tool's result
    whose call was cut off (servers refuse that): an assistant message that
    calls tools is kept with its results or dropped with them."""
    start = max(0, len(history) - max_items)
    if max_tokens is not None:
        used, fits = 0, len(history)
        while fits > start:
            used += _tokens(history[fits - 1])
            if used > max_tokens:
                break
            fits -= 1
        start = fits
    while start < len(history) and isinstance(history[start], dict) and history[start].get("role") == "tool":
        start += 1
    return history[start:]


def _tokens(message: Any) -> int:
    if not isinstance(message, dict):
        return 4 + -(-len(str(message)) // 4)
    size = len(message.get("content") or "") if isinstance(message.get("content"), (str, type(None))) else 0
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        size += len(call.get("id") or "") + len(function.get("name") or "") + len(function.get("arguments") or "")
    return 4 + -(-size // 4)


class Chat:
    """A model behind an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, base_url: str, model: str, max_steps: int = DEFAULT_MAX_STEPS):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_steps = max_steps

    @classmethod
    def from_env(cls) -> "Chat":
        """The model named by the plugin's `MODEL_URL` and `MODEL` variables."""
        missing = [n for n in ("MODEL_URL", "MODEL") if not os.environ.get(n)]
        if missing:
            raise http.HttpError(f"{', '.join(missing)} not set in the plugin's env (see [[plugin]] env)")
        return cls(os.environ["MODEL_URL"], os.environ["MODEL"])

    def complete(self, messages: List[Message]) -> str:
        """The model's answer to `messages` (dicts with `role` and `content`), whole."""
        return _text(self._ask(messages, [], False)[0])

    def stream(self, messages: List[Message]) -> str:
        """The model's answer to `messages`, streamed: each piece of it is emitted
        (`agent_sdk.emit`) as the model sends it, so a caller that asked for a
        stream sees it come; returns the whole answer.

        It asks for an event stream with the token usage at its end
        (`stream_options.include_usage`, which servers that do not know it
        ignore). A server that does not stream and answers one JSON completion
        is fine too: its answer is emitted in one piece."""
        return _text(self._ask(messages, [], True)[0])

    def complete_with_tools(self, messages: List[Message], tools: Sequence[Tool], max_steps: Optional[int] = None) -> str:
        """The model's answer to `messages` when it may call `tools`: each call it
        asks for is run and its result sent back, until it answers with text,
        which is returned.

        Every message of the loop is appended to `messages` (the caller's list):
        per round of calls the assistant's message (with its `tool_calls`) and
        one `{"role": "tool", "tool_call_id", "content"}` per call, then the final
        `{"role": "assistant", "content"}`. Store `messages[start:]` (`start`: the
        index of the user's message) in the session's history to keep the whole
        exchange for the next turn.

        A handler's exception, a call of a tool not in `tools` and arguments
        that are not JSON are told to the model as that call's result (`error:
        ...`), not raised. No text within `max_steps` requests (the Chat's, 8 by
        default) raises `MaxStepsError`; the calls of the last answer are not
        run, and `messages` then ends with the last results sent."""
        return self._loop(messages, tools, max_steps, False)

    def stream_with_tools(self, messages: List[Message], tools: Sequence[Tool], max_steps: Optional[int] = None) -> str:
        """`complete_with_tools`, each answer streamed: the final answer's text is
        emitted as it comes, as by `stream` (and so is any text the model says
        alongside its tool calls, which is rare). Tool calls streamed in pieces
        are put together."""
        return self._loop(messages, tools, max_steps, True)

    def _loop(self, messages: List[Message], tools: Sequence[Tool], max_steps: Optional[int], stream: bool) -> str:
        steps = max(1, self.max_steps if max_steps is None else max_steps)
        specs = [t.to_openai() for t in tools]
        for step in range(1, steps + 1):
            text, calls = self._ask(messages, specs, stream)
            if not calls:
                text = _text(text)
                messages.append({"role": "assistant", "content": text})
                return text
            if step == steps:
                break
            messages.append({"role": "assistant", "content": text or None, "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": _run_call(tools, call)})
        raise MaxStepsError(f"the model still called tools after {steps} requests (max_steps)")

    def _ask(self, messages: List[Message], tools: List[Dict[str, Any]], stream: bool) -> Tuple[str, List[Dict[str, Any]]]:
        """One request: the answer's text and tool calls (at least one of them)."""
        request: Dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            request["tools"] = tools
        if not stream:
            reply = http.post_json(self._url(), request)
            if not reply.ok:
                raise http.HttpError(f"the model answered {reply.status} ({reply.text()[:200]})")
            return _checked(*_reply(reply.text()))
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
        headers = [("content-type", "application/json"), ("accept", "text/event-stream, application/json")]
        answer = _Answer(emit)
        http.send_lines("POST", self._url(), headers, json.dumps(request).encode(), answer.line)
        return answer.finish_reply()

    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"


def _run_call(tools: Sequence[Tool], call: Dict[str, Any]) -> str:
    """Runs one call: its result, or `error: ...` for the model to read."""
    name = call["function"]["name"]
    found = next((t for t in tools if t.name == name), None)
    if found is None:
        return f"error: unknown tool {json.dumps(name)}"
    raw = (call["function"].get("arguments") or "").strip()
    try:
        arguments = json.loads(raw) if raw else {}
    except (ValueError, RecursionError) as e:
        return f"error: the arguments are not JSON ({e})"
    try:
        return found.call(arguments)
    except Exception as e:  # noqa: BLE001 - the model is told, the loop goes on
        return f"error: {e}"


def _checked(text: str, calls: List[Dict[str, Any]]) -> Tuple[str, List[Dict[str, Any]]]:
    """An answer with neither text nor a tool call is an error."""
    if not calls:
        _text(text)
    return text, calls


def _call(index: int, raw: Any) -> Dict[str, Any]:
    raw = raw if isinstance(raw, dict) else {}
    function = raw.get("function") if isinstance(raw.get("function"), dict) else {}
    return {
        "id": raw.get("id") or f"call_{index}",
        "type": "function",
        "function": {"name": function.get("name") or "", "arguments": function.get("arguments") or ""},
    }


def _completion(body: str) -> str:
    """The text of a whole JSON completion (`choices[0].message.content`)."""
    return _text(_reply(body)[0])


def _reply(body: str) -> Tuple[Any, List[Dict[str, Any]]]:
    """A whole JSON completion's text (maybe None) and tool calls."""
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
    message = message if isinstance(message, dict) else {}
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise http.HttpError(f"the model's answer has content that is not text: {str(content)[:200]}")
    calls = message.get("tool_calls")
    calls = [_call(i, c) for i, c in enumerate(calls)] if isinstance(calls, list) else []
    return content or "", calls


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
        # Tool calls streamed so far, by index.
        self.calls: Dict[int, Dict[str, Any]] = {}

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
        return _text(self.finish_reply()[0])

    def finish_reply(self) -> Tuple[str, List[Dict[str, Any]]]:
        """The answer's text and tool calls (at least one of them)."""
        if self.form is None:
            raise http.HttpError("the model's answer is empty")
        if self.form == "json":
            text, calls = _checked(*_reply("\n".join(self.pending)))
            if text:
                self.piece(text)
            return text, calls
        self._dispatch()
        if self.events == 0:
            raise http.HttpError(f"the model's answer is neither a chat completion nor an event stream: {self.first}")
        return _checked("".join(self.text), [self.calls[i] for i in sorted(self.calls)])

    def _call_piece(self, piece: Any) -> None:
        """A piece of a streamed tool call: a new index starts a call, the next
        pieces of that index add to its id, name and arguments."""
        if not isinstance(piece, dict):
            return
        index = piece.get("index")
        index = index if isinstance(index, int) else len(self.calls)
        call = self.calls.setdefault(
            index, {"id": f"call_{index}", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if isinstance(piece.get("id"), str) and piece["id"]:
            call["id"] = piece["id"]
        function = piece.get("function")
        if isinstance(function, dict):
            name = function.get("name")
            # The name comes whole in the first piece; said again, it is not added.
            if isinstance(name, str) and name != call["function"]["name"]:
                call["function"]["name"] += name
            if isinstance(function.get("arguments"), str):
                call["function"]["arguments"] += function["arguments"]

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
            calls = delta.get("tool_calls") if isinstance(delta, dict) else None
            for piece in calls if isinstance(calls, list) else []:
                self._call_piece(piece)
