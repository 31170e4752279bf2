"""A client of MCP (Model Context Protocol) servers over the Streamable HTTP
transport, through the plugin's outbound HTTP (`agent_sdk.http`): the server's
origin must be in the plugin's `[[plugin.outbound]]`, and the host adds its
`secret_headers` (a bearer token for the server) to every request, so the plugin
never holds them.

    from agent_sdk import mcp
    client = mcp.connect("https://tools.example.com/mcp")
    for tool in client.tools():                      # McpTool(name, description, input_schema)
        print(tool.name, tool.description)
    total = client.call("add", {"a": 2, "b": 3})     # "5"

To give a model the server's tools, `client.chat_tools()` makes them
`agent_sdk.llm.Tool`s whose handlers call the server; `chat_tools("mcp_")` puts
a prefix before each name the model sees (`mcp_add`), so they cannot clash with
local tools:

    tools = client.chat_tools("mcp_") + [my_tool]
    reply = Chat.from_env().complete_with_tools(messages, tools)

`connect` sends `initialize` (offering `PROTOCOL_VERSION`) and then the
`notifications/initialized` notification; every later request carries the
`Mcp-Session-Id` the server gave (if any) and the `MCP-Protocol-Version` agreed
on. Each request is one POST of a JSON-RPC 2.0 message, answered as
`application/json` or as an event stream (`text/event-stream`) whose events may
bring notifications before the answer: they are skipped, and the stream is left
once the answer is in. Each POST counts in the turn's `max_requests` (16 by
default): connecting costs 2, listing tools 1 per page, a call 1.

Errors: a request that fails or an HTTP error status raises `HttpError`; a
JSON-RPC error (its `code` set), an answer that is not JSON-RPC, and a tool
result marked `isError` (its message the tool's text, as it is, for a model to
read) raise `McpError`.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from . import http

if TYPE_CHECKING:
    from . import llm

__all__ = ["PROTOCOL_VERSION", "Client", "McpError", "McpTool", "connect"]

PROTOCOL_VERSION = "2025-11-25"
"""The protocol version this client offers in `initialize`."""

_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")


class McpError(Exception):
    """An MCP server answered an error: a JSON-RPC error (`code` is its code), an
    answer that is not JSON-RPC, or a tool result marked `isError` (`code` is
    None; the message is the tool's text)."""

    def __init__(self, message: str, code: Optional[int] = None):
        super().__init__(message)
        self.code = code


class McpTool:
    """A tool of an MCP server, as `tools/list` describes it: what a model needs to
    call it (`llm.Tool(tool.name, tool.description, tool.input_schema, handler)`
    with a handler that calls `Client.call`)."""

    def __init__(self, name: str, description: str = "", input_schema: Optional[Dict[str, Any]] = None):
        self.name = name
        self.description = description
        self.input_schema = input_schema if input_schema is not None else {"type": "object"}

    def __repr__(self) -> str:
        return f"McpTool({self.name!r}, {self.description!r}, {self.input_schema!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, McpTool) and vars(self) == vars(other)


def connect(url: str) -> "Client":
    """Connects to the MCP server at `url` (its endpoint, e.g.
    `https://tools.example.com/mcp`): `initialize`, then
    `notifications/initialized`."""
    client = Client(url)
    params = {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "agent-sdk-python", "version": "0.1.0"},
    }
    result, session = client._request("initialize", params, first=True)
    version = result.get("protocolVersion") if isinstance(result, dict) else None
    if not isinstance(version, str):
        raise McpError(f"initialize answered no protocolVersion: {_start(result)}")
    if version not in _VERSIONS:
        raise McpError(
            f"the MCP server speaks protocol version {version}, which this client does not "
            f"(it speaks {', '.join(_VERSIONS)})"
        )
    client.protocol_version = version
    client.session_id = session
    client.server_info = result.get("serverInfo")
    client._post("notifications/initialized", {"jsonrpc": "2.0", "method": "notifications/initialized"}, None)
    return client


class Client:
    """A connection to an MCP server (its session); made by `connect`."""

    def __init__(self, url: str):
        self.url = url
        self.session_id: Optional[str] = None
        self.protocol_version = PROTOCOL_VERSION
        self.server_info: Any = None
        self._ids = itertools.count(1)

    def tools(self) -> List[McpTool]:
        """Every tool of the server (`tools/list`, following `nextCursor`)."""
        tools: List[McpTool] = []
        cursor: Optional[str] = None
        while True:
            page = self.request("tools/list", {"cursor": cursor} if cursor is not None else {})
            listed = page.get("tools") if isinstance(page, dict) else None
            if not isinstance(listed, list):
                raise McpError(f"tools/list answered no tools: {_start(page)}")
            for tool in listed:
                if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                    raise McpError(f"tools/list answered a tool that is not one: {_start(tool)}")
                description = tool.get("description")
                schema = tool.get("inputSchema")
                tools.append(
                    McpTool(
                        tool["name"],
                        description if isinstance(description, str) else "",
                        schema if isinstance(schema, dict) else None,
                    )
                )
            following = page.get("nextCursor")
            # A server that hands the same cursor back would never end.
            if not isinstance(following, str) or following == cursor:
                return tools
            cursor = following

    def call(self, name: str, args: Optional[Dict[str, Any]] = None) -> str:
        """Calls the tool `name` with `args` and returns the text of its result: its
        text content blocks, one per line (other blocks as a short note, e.g.
        `[image image/png]`; with no content, its `structuredContent` as JSON). A
        result marked `isError` raises `McpError` with that text."""
        result = self.request("tools/call", {"name": name, "arguments": args or {}})
        text = _result_text(result)
        if isinstance(result, dict) and result.get("isError") is True:
            raise McpError(text or f"the tool {name} failed without saying why")
        return text

    def chat_tools(self, prefix: str = "") -> "List[llm.Tool]":
        """Every tool of the server (`tools()`) as an `agent_sdk.llm.Tool` for
        `Chat.complete_with_tools` / `stream_with_tools`: same description and
        schema, `prefix` before the name the model sees (e.g. "mcp_", so they
        cannot clash with local tools), and a handler that calls the tool by its
        own name (`call`). A tool's error (`McpError`, `HttpError`) is the
        handler's, which the loop tells the model (`error: ...`). Costs one
        request per page of `tools/list`, and one per call the model makes."""
        from . import llm

        def handler(name: str):
            return lambda args: self.call(name, args)

        return [llm.Tool(prefix + t.name, t.description, t.input_schema, handler(t.name)) for t in self.tools()]

    def request(self, method: str, params: Optional[Dict[str, Any]] = None) -> Any:
        """Any other request (`resources/list`, `prompts/get`...): its JSON-RPC
        result; a JSON-RPC error raises `McpError`."""
        return self._request(method, params or {})[0]

    def _request(self, method: str, params: Dict[str, Any], first: bool = False) -> Tuple[Any, Optional[str]]:
        id = next(self._ids)
        message = {"jsonrpc": "2.0", "id": id, "method": method, "params": params}
        reply, session = self._post(method, message, id, first)
        if reply is None:
            raise McpError(f"the MCP server answered {method} with no JSON-RPC response")
        return _outcome(method, reply), session

    def _post(self, method: str, message: Dict[str, Any], id: Optional[int], first: bool = False) -> Tuple[Any, Optional[str]]:
        headers = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
        if not first:
            headers.append(("mcp-protocol-version", self.protocol_version))
            if self.session_id:
                headers.append(("mcp-session-id", self.session_id))
        body = json.dumps(message).encode()
        status, session, reply, error_body = http._run("POST", self.url, lambda: _post(self.url, headers, body, id))
        if not 200 <= status < 300:
            raise _status_error(method, status, error_body, self.session_id is not None)
        return reply, session


def _post(url: str, headers: List[Tuple[str, str]], body: bytes, id: Optional[int]):
    """Sends one JSON-RPC message and reads until its response: a JSON body whole,
    an event stream event by event, left once the response is in. (status,
    session id, response or None, start of an error body)."""
    incoming = http._start("POST", url, headers, body)
    status = incoming.status()
    received = {n.lower(): v.decode(errors="replace") for n, v in incoming.headers().entries()}
    session = received.get("mcp-session-id")
    events = received.get("content-type", "").strip().lower().startswith("text/event-stream")
    stream = http.Body(incoming.consume())
    if not 200 <= status < 300:
        return status, session, None, stream.start().decode(errors="replace")
    whole = bytearray()
    parser = _Events()
    try:
        while True:
            chunk = stream.next()
            if chunk is None:
                break
            if not events:
                whole += chunk
                continue
            for data in parser.push(chunk):
                reply = _response_to(id, data) if id is not None else None
                if reply is not None:
                    # Left here: a server may keep the stream open after it.
                    return status, session, reply, ""
    finally:
        stream.close()
    if id is None:
        return status, session, None, ""
    if events:
        for data in parser.finish():
            reply = _response_to(id, data)
            if reply is not None:
                return status, session, reply, ""
        raise McpError("the MCP server's event stream ended without the answer")
    text = whole.decode(errors="replace")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise McpError(f"the MCP server's answer is not JSON ({e}): {text[:200]}") from None
    reply = _response_to_value(id, value)
    if reply is None:
        raise McpError(f"the MCP server's answer is not the JSON-RPC response to request {id}: {text[:200]}")
    return status, session, reply, ""


def _status_error(method: str, status: int, body: str, in_session: bool) -> Exception:
    """The error of a non-2xx answer: the JSON-RPC error it carries, if any."""
    try:
        reply = json.loads(body)
    except (ValueError, RecursionError):
        reply = None
    if isinstance(reply, dict) and reply.get("error") is not None:
        try:
            _outcome(method, reply)
        except McpError as e:
            return e
    if status == 404 and in_session:
        return http.HttpError(f"the MCP server no longer knows this session (404 to {method}): connect again")
    return http.HttpError(f"the MCP server answered {method} with {status} ({body.strip()[:200]})")


def _outcome(method: str, reply: Any) -> Any:
    """The result of a JSON-RPC response, or its error raised."""
    if not isinstance(reply, dict):
        raise McpError(f"the MCP server answered {method} with {_start(reply)}")
    error = reply.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        message = error.get("message") if isinstance(error, dict) else None
        message = message if isinstance(message, str) else _start(error)
        if code is not None:
            raise McpError(f"the MCP server answered {method} with error {code}: {message}", code)
        raise McpError(f"the MCP server answered {method} with an error: {message}")
    if "result" not in reply:
        raise McpError(f"the MCP server answered {method} with no result")
    return reply["result"]


def _response_to(id: int, data: str) -> Any:
    """The response to request `id` in an event's data, if it is that (not a
    notification, nor a request of the server's)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return _response_to_value(id, value)


def _response_to_value(id: int, value: Any) -> Any:
    if isinstance(value, list):
        # A batch (protocol 2025-03-26): the response among its messages.
        for message in value:
            reply = _response_to_value(id, message)
            if reply is not None:
                return reply
        return None
    if not isinstance(value, dict) or not ("result" in value or "error" in value):
        return None
    if "id" not in value:
        return None
    got = value["id"]
    # An error about a request the server could not read has id null.
    if got is None:
        return value if "error" in value else None
    if isinstance(got, bool):
        return None
    if got == id or (isinstance(got, str) and got == str(id)):
        return value
    return None


def _result_text(result: Any) -> str:
    """The text of a `tools/call` result."""
    if not isinstance(result, dict):
        return ""
    parts: List[str] = []
    content = result.get("content")
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text") or ""))
        elif kind == "resource":
            resource = block.get("resource") if isinstance(block.get("resource"), dict) else {}
            text = resource.get("text")
            parts.append(text if isinstance(text, str) else f"[resource {resource.get('uri') or ''}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.get('uri') or ''}]")
        else:
            parts.append(f"[{kind} {block.get('mimeType') or ''}]")
    if not parts and result.get("structuredContent") is not None:
        return json.dumps(result["structuredContent"], separators=(",", ":"))
    return "\n".join(parts)


def _start(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text[:200]


class _Events:
    """A server-sent event stream read as it arrives: the data of each `message`
    event (the default type) that has data (an empty one primes a resumable
    stream)."""

    def __init__(self) -> None:
        self.pending = bytearray()
        self.data: List[str] = []
        self.event = ""

    def push(self, chunk: bytes) -> List[str]:
        """The events `chunk` completes."""
        done: List[str] = []
        last = chunk.rfind(b"\n")
        if last < 0:
            self.pending += chunk
            return done
        self.pending += chunk[:last]
        lines = bytes(self.pending).split(b"\n")
        self.pending = bytearray(chunk[last + 1 :])
        for line in lines:
            self._line(line.decode(errors="replace").rstrip("\r"), done)
        return done

    def finish(self) -> List[str]:
        """The last event, when the stream ends without a blank line after it."""
        done: List[str] = []
        if self.pending:
            self._line(bytes(self.pending).decode(errors="replace").rstrip("\r"), done)
            self.pending = bytearray()
        self._line("", done)
        return done

    def _line(self, line: str, done: List[str]) -> None:
        if not line:
            data = "\n".join(self.data)
            event = self.event
            self.data, self.event = [], ""
            if data and event in ("", "message"):
                done.append(data)
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self.data.append(value)
        elif field == "event":
            self.event = value
