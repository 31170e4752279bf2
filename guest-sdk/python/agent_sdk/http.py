"""HTTP requests from a plugin, over `wasi:http`.

The host decides which origins a plugin may reach (deny by default) and adds the
credentials an origin needs itself, after the request leaves the plugin: a plugin
never holds an API key. A refused request raises `HttpError` naming
`HttpRequestDenied`. A request body is sent whole, with its `Content-Length`
(never chunked), so servers that read only that header get it.

    from agent_sdk import http
    reply = http.post_json("https://api.example.com/v1/things", {"name": "x"})
    if reply.ok:
        data = reply.json()

A request blocks the plugin until its answer (or the next piece of a streamed one)
arrives, with `wasi:io`'s blocking calls: the host runs other turns meanwhile. No
`asyncio` event loop is made per request (componentize-py's `poll_loop` made one),
which cost a Python turn of a streamed model answer about a fifth of its CPU.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

if sys.platform == "wasi":
    from componentize_py_types import Err, Ok
    from wit_world.imports import outgoing_handler
    from wit_world.imports.streams import StreamError_Closed, StreamError_LastOperationFailed
    from wit_world.imports.types import (
        Fields,
        IncomingBody,
        Method_Delete,
        Method_Get,
        Method_Other,
        Method_Patch,
        Method_Post,
        Method_Put,
        OutgoingBody,
        OutgoingRequest,
        Scheme_Http,
        Scheme_Https,
        http_error_code,
    )
else:
    # A plain interpreter (a plugin's unit tests, agent_sdk.testing): the module
    # imports, and a request raises HttpError, as there is no host to send it.
    from agent_sdk._native import _Err as Err

    outgoing_handler = None
    Ok = StreamError_Closed = StreamError_LastOperationFailed = IncomingBody = OutgoingBody = None
    http_error_code = None
    Fields = OutgoingRequest = Method_Other = Scheme_Http = Scheme_Https = None
    Method_Get = Method_Post = Method_Put = Method_Delete = Method_Patch = None

__all__ = ["HttpError", "Response", "get", "post_json", "send", "send_lines"]

_METHODS = {
    "GET": Method_Get,
    "POST": Method_Post,
    "PUT": Method_Put,
    "DELETE": Method_Delete,
    "PATCH": Method_Patch,
}


class HttpError(Exception):
    """A request that failed: refused by the host, unreachable, timed out, or
    answered with something unusable (`agent_sdk.llm`: an error status, an answer
    without text)."""


class Response:
    """A response, read whole."""

    def __init__(self, status: int, headers: List[Tuple[str, str]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (any case)."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def text(self) -> str:
        """The body as UTF-8 text (a byte that is not UTF-8 becomes U+FFFD)."""
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        """The body decoded from JSON."""
        return json.loads(self.body)


def get(url: str, headers: Sequence[Tuple[str, str]] = ()) -> Response:
    """`GET url`."""
    return send("GET", url, headers)


def post_json(url: str, body: Any, headers: Sequence[Tuple[str, str]] = ()) -> Response:
    """`POST url` with `body` as JSON."""
    data = json.dumps(body).encode()
    return send("POST", url, [("content-type", "application/json"), *headers], data)


def send(method: str, url: str, headers: Sequence[Tuple[str, str]] = (), body: bytes = b"") -> Response:
    """Sends a request and reads the whole response."""
    return _run(method, url, lambda: _send(method, url, headers, body))


def send_lines(
    method: str,
    url: str,
    headers: Sequence[Tuple[str, str]],
    body: bytes,
    line: Callable[[str], None],
) -> int:
    """Sends a request and hands its response body to `line` one line at a time
    (without its line end), as the lines arrive (a server-sent event stream);
    returns the status. A status that is not a success raises `HttpError` with
    the body's first bytes instead."""
    return _run(method, url, lambda: _send_lines(method, url, headers, body, line))


def _run(method: str, url: str, work: Callable[[], Any]) -> Any:
    """Runs `work` (which sends a request), a failure of `wasi:http` as `HttpError`."""
    where = url.split("?")[0]
    if outgoing_handler is None:
        raise HttpError(
            f"{method} {where}: no host to send it to outside a component (in a unit "
            "test, replace the call, e.g. unittest.mock.patch.object(Chat, 'complete'))"
        )
    try:
        return work()
    except Err as e:
        raise HttpError(f"{method} {where}: {e.value}") from None


# The most bytes read from a response body at once.
READ_SIZE = 16 * 1024
# The most bytes one blocking write may take (wasi:io's limit).
WRITE_SIZE = 4096
# The most bytes of an error body read, for its message.
ERROR_START = 1024


class Body:
    """A response body, read as its pieces arrive. `close` drops one not read to
    its end: its stream first, then the body (a child resource dropped after its
    parent traps the component)."""

    def __init__(self, body: Any):
        self.body = body
        self.stream = body.stream()

    def next(self) -> Optional[bytes]:
        """The next piece, waiting for it; None at the end."""
        while self.stream is not None:
            try:
                piece = self.stream.blocking_read(READ_SIZE)
            except Err as e:
                if not isinstance(e.value, StreamError_Closed):
                    raise Err(_failure(e.value)) from None
                self.stream.__exit__(None, None, None)
                self.stream = None
                IncomingBody.finish(self.body).__exit__(None, None, None)
                self.body = None
                return None
            if piece:
                return piece
        return None

    def start(self, size: int = ERROR_START) -> bytes:
        """The first `size` bytes of what is left (the start of an error body, for
        its message); the rest is not waited for, as it may stream on until the
        deadline. Closes the body."""
        start = bytearray()
        try:
            while len(start) < size:
                chunk = self.next()
                if chunk is None:
                    break
                start += chunk
        finally:
            self.close()
        return bytes(start[:size])

    def close(self) -> None:
        if self.stream is not None:
            self.stream.__exit__(None, None, None)
            self.stream = None
        if self.body is not None:
            self.body.__exit__(None, None, None)
            self.body = None


def _failure(value: Any) -> Any:
    """What a body's read failed with, readable: the HTTP error the host names
    (`ErrorCode_HttpResponseBodySize(...)`, `ErrorCode_ConnectionReadTimeout()`),
    else its own description."""
    if not isinstance(value, StreamError_LastOperationFailed):
        return value
    with value.value as error:
        code = http_error_code(error)
        return code if code is not None else error.to_debug_string()


def _start(method: str, url: str, headers: Sequence[Tuple[str, str]], body: bytes) -> Any:
    """Sends the request; its incoming response, once its head has arrived."""
    parts = urlsplit(url)
    fields = [(n, v.encode()) for n, v in headers]
    # The body is all here, so its length is known: say it. Without it the body
    # goes out chunked, which servers that read only `Content-Length` (Python's
    # `http.server`, some proxies and small model servers) take for an empty body.
    upper = method.upper()
    if not any(n.lower() == "content-length" for n, _ in headers) and (body or upper in ("POST", "PUT", "PATCH")):
        fields.append(("content-length", str(len(body)).encode()))
    request = OutgoingRequest(Fields.from_list(fields))
    request.set_method(_METHODS[upper]() if upper in _METHODS else Method_Other(upper))
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else "") or "/")
    outgoing = request.body()
    with outgoing_handler.handle(request, None) as future:
        _write(outgoing, body)
        while True:
            answer = future.get()
            if answer is not None:
                break
            with future.subscribe() as ready:
                ready.block()
    if isinstance(answer, Ok):
        if isinstance(answer.value, Ok):
            return answer.value.value
        raise answer.value
    raise answer


def _write(outgoing: Any, body: bytes) -> None:
    """Writes the request's body and ends it. A write the host refuses stops it:
    the request has failed, and its response says why."""
    stream = outgoing.write()
    try:
        for at in range(0, len(body), WRITE_SIZE):
            stream.blocking_write_and_flush(body[at : at + WRITE_SIZE])
    except Err:
        pass
    finally:
        stream.__exit__(None, None, None)
    try:
        OutgoingBody.finish(outgoing, None)
    except Err:
        pass


def _send(method: str, url: str, headers: Sequence[Tuple[str, str]], body: bytes) -> Response:
    incoming = _start(method, url, headers, body)
    status = incoming.status()
    received = [(n, v.decode(errors="replace")) for n, v in incoming.headers().entries()]
    stream = Body(incoming.consume())
    chunks = []
    try:
        while True:
            chunk = stream.next()
            if chunk is None:
                return Response(status, received, b"".join(chunks))
            chunks.append(chunk)
    finally:
        stream.close()


def _send_lines(
    method: str, url: str, headers: Sequence[Tuple[str, str]], body: bytes, line: Callable[[str], None]
) -> int:
    incoming = _start(method, url, headers, body)
    status = incoming.status()
    stream = Body(incoming.consume())
    if not 200 <= status < 300:
        start = stream.start().decode(errors="replace")[:200]
        raise HttpError(f"the server answered {status} ({start})")
    pending = bytearray()
    try:
        while True:
            chunk = stream.next()
            if chunk is None:
                break
            # Only the new bytes are searched: a long line costs its length once.
            last = chunk.rfind(b"\n")
            if last < 0:
                pending += chunk
                continue
            pending += chunk[:last]
            for text in pending.split(b"\n"):
                line(text.decode(errors="replace").rstrip("\r"))
            pending = bytearray(chunk[last + 1 :])
    finally:
        stream.close()
    if pending:
        line(pending.decode(errors="replace").rstrip("\r"))
    return status
