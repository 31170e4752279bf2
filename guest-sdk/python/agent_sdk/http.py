"""HTTP requests from a plugin, over `wasi:http` (componentize-py's `poll_loop`).

The host decides which origins a plugin may reach (deny by default) and adds the
credentials an origin needs itself, after the request leaves the plugin: a plugin
never holds an API key. A refused request raises `HttpError` naming
`HttpRequestDenied`.

    from agent_sdk import http
    reply = http.post_json("https://api.example.com/v1/things", {"name": "x"})
    if reply.ok:
        data = reply.json()
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import poll_loop
from componentize_py_types import Err
from wit_world.imports.types import (
    Fields,
    Method_Delete,
    Method_Get,
    Method_Other,
    Method_Patch,
    Method_Post,
    Method_Put,
    OutgoingRequest,
    Scheme_Http,
    Scheme_Https,
)

__all__ = ["HttpError", "Response", "get", "post_json", "send"]

_METHODS = {
    "GET": Method_Get,
    "POST": Method_Post,
    "PUT": Method_Put,
    "DELETE": Method_Delete,
    "PATCH": Method_Patch,
}


class HttpError(Exception):
    """A request that failed: refused by the host, unreachable, timed out."""


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
        """The body as UTF-8 text."""
        return self.body.decode()

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
    loop = poll_loop.PollLoop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_send(method, url, headers, body))
    except Err as e:
        where = url.split("?")[0]
        raise HttpError(f"{method} {where}: {e.value}") from None


async def _send(method: str, url: str, headers: Sequence[Tuple[str, str]], body: bytes) -> Response:
    parts = urlsplit(url)
    request = OutgoingRequest(Fields.from_list([(n, v.encode()) for n, v in headers]))
    upper = method.upper()
    request.set_method(_METHODS[upper]() if upper in _METHODS else Method_Other(upper))
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else "") or "/")
    sink = poll_loop.Sink(request.body())
    response = asyncio.ensure_future(poll_loop.send(request))
    if body:
        await sink.send(body)
    sink.close()
    incoming = await response
    status = incoming.status()
    received = [(n, v.decode(errors="replace")) for n, v in incoming.headers().entries()]
    stream = poll_loop.Stream(incoming.consume())
    chunks = []
    while True:
        chunk = await stream.next()
        if chunk is None:
            return Response(status, received, b"".join(chunks))
        chunks.append(chunk)
