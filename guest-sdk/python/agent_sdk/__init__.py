"""Write agent plugins for agent-host in Python.

A plugin handles one turn of a session at a time. Its state (a document per
session, a history per session, plugin-wide values) lives in the host's store,
under a prefix the operator chose: the plugin only names sessions and keys. Values
are JSON.

    from agent_sdk import Handler, Session, agent

    @agent(name="echo", version="0.1.0")
    def handle(session: Session, input: str) -> str:
        turns = (session.load() or 0) + 1
        session.save(turns)
        session.append(input)
        return f"turn {turns}: {input}"

`Handler` must be imported into the plugin's module: it is the class the component
exports. Build with `guest-sdk/python/build.sh APP_DIR MODULE OUT.wasm`.

A state call the host refuses raises `StateError` (its `kind` is the WIT error's
case); raising `AgentError` answers the turn with an error message. Both end the
turn as a plugin error (its writes are committed). Any other exception, and an
answer that is not a `str`, crash the turn like a Rust panic: nothing of it is
written, the traceback goes to stderr, and the host's error names the exception
(`TypeError: x`).

Under a plain `python3` (not in a component) the state calls go to the in-memory
store of `agent_sdk.testing`, so a plugin's unit tests run with `python3 -m
unittest`: `agent_sdk.testing.Store().run(session, input)` runs a turn of the
`@agent` handler.
"""

from __future__ import annotations

import json
import reprlib
import sys
from datetime import timedelta
from typing import Any, Callable, List, Optional, Tuple, Union

if sys.platform == "wasi":
    # Inside the component: componentize-py's bindings, answered by the host.
    from componentize_py_types import Err
    from wit_world import exports
    from wit_world.imports import agent_state as _wit
    from wit_world.imports import output as _output
else:
    # A plain interpreter (a plugin's unit tests): agent_sdk.testing's in-memory
    # store answers instead, with the host's semantics.
    from agent_sdk._native import _agent_state as _wit
    from agent_sdk._native import _Err as Err
    from agent_sdk._native import _exports as exports
    from agent_sdk._native import _output

__all__ = [
    "AgentError",
    "Handler",
    "Session",
    "StateError",
    "agent",
    "emit",
    "sessions",
    "values",
]

Ttl = Union[int, timedelta, None]

_KINDS = {
    _wit.Error_InvalidKey: "invalid-key",
    _wit.Error_InvalidArgument: "invalid-argument",
    _wit.Error_TooLarge: "too-large",
    _wit.Error_QuotaExceeded: "quota-exceeded",
    _wit.Error_Conflict: "conflict",
    _wit.Error_Unavailable: "unavailable",
    _wit.Error_Internal: "internal",
}


class StateError(Exception):
    """A state call the host refused or failed.

    `kind` is one of `invalid-key`, `invalid-argument`, `too-large`,
    `quota-exceeded`, `conflict`, `unavailable`, `internal`; `detail` is what the
    host said (a message, or the size limit for `too-large`).
    """

    def __init__(self, kind: str, detail: Any = None):
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}" if detail is not None else kind)


class AgentError(Exception):
    """Raise it to answer the turn with an error message for the caller."""


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Err as e:
        error = e.value
        kind = _KINDS.get(type(error), "internal")
        raise StateError(kind, getattr(error, "value", None)) from None


def emit(chunk: str) -> None:
    """Shows `chunk` to the caller now, while the turn runs (a caller that asked
    for a stream gets it at once; others only the answer). It is shown before the
    turn commits: if the turn then fails, it was seen but not stored."""
    _call(_output.emit, chunk)


def _seconds(ttl: Ttl) -> Optional[int]:
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        return max(1, int(ttl.total_seconds()))
    return int(ttl)


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _decode(data: bytes) -> Any:
    return json.loads(data)


class Session:
    """One session: its state document, its history, its expiry."""

    def __init__(self, id: str):
        self.id = id

    def load(self) -> Any:
        """The state document, or None."""
        entry = self.load_versioned()
        return None if entry is None else entry[0]

    def load_versioned(self) -> Optional[Tuple[Any, int]]:
        """The state document and its version, or None."""
        entry = _call(_wit.load, self.id)
        return None if entry is None else (_decode(entry.value), entry.version)

    def save(self, value: Any, ttl: Ttl = None, if_version: Optional[int] = None) -> int:
        """Saves the state document; returns its new version. With `if_version`,
        only if the stored version is that one (0: no state yet), else
        `StateError("conflict")`. `ttl`: seconds or a timedelta."""
        options = _wit.SaveOptions(ttl_seconds=_seconds(ttl), if_version=if_version)
        return _call(_wit.save, self.id, _encode(value), options)

    def delete(self) -> bool:
        """Removes the state document; True if there was one."""
        return _call(_wit.delete, self.id)

    def append(self, *items: Any) -> int:
        """Appends items to the history; returns its new length."""
        return _call(_wit.append, self.id, [_encode(i) for i in items])

    def last(self, n: int) -> List[Any]:
        """The newest `n` history items, oldest first."""
        return [_decode(i) for i in _call(_wit.items, self.id, n)]

    def history(self) -> List[Any]:
        """The newest history items, as many as one call may return."""
        return [_decode(i) for i in _call(_wit.items, self.id, None)]

    def pop(self) -> Any:
        """Removes and returns the newest history item, or None."""
        item = _call(_wit.pop, self.id)
        return None if item is None else _decode(item)

    def touch(self, ttl: Ttl = None) -> bool:
        """Sets the session's expiry (None: never); True if it exists."""
        return _call(_wit.touch, self.id, _seconds(ttl))

    def ttl(self) -> Optional[int]:
        """Seconds until the session expires, or None (never, or no session)."""
        return _call(_wit.ttl, self.id)

    def clear(self) -> bool:
        """Removes everything of the session; True if anything existed."""
        return _call(_wit.clear, self.id)


def sessions() -> List[str]:
    """Every live session of the plugin, in byte order."""
    found: List[str] = []
    cursor: Optional[str] = None
    while True:
        page = _call(_wit.list_sessions, cursor, 1000)
        found.extend(page.sessions)
        cursor = page.cursor
        if cursor is None:
            return found


class _Values:
    """Plugin-wide values, not tied to a session (a cache, a counter)."""

    def get(self, key: str) -> Any:
        data = _call(_wit.get, key)
        return None if data is None else _decode(data)

    def set(self, key: str, value: Any, ttl: Ttl = None) -> None:
        _call(_wit.set, key, _encode(value), _seconds(ttl))

    def remove(self, key: str) -> bool:
        return _call(_wit.remove, key)

    def increment(self, key: str, delta: int = 1) -> int:
        return _call(_wit.increment, key, delta)


values = _Values()

_handle: Optional[Callable[[Session, str], str]] = None
_info = ("plugin", "0.0.0")


def agent(name: str, version: str = "0.1.0") -> Callable:
    """Makes the decorated function `f(session, input) -> str` the plugin's turn
    handler, with the name and version the plugin describes itself with."""

    def register(f: Callable[[Session, str], str]) -> Callable[[Session, str], str]:
        global _handle, _info
        _handle = f
        _info = (name, version)
        return f

    return register


class Handler(exports.Handler):
    """The component's export; import it into the plugin's module."""

    def describe(self) -> exports.handler.Info:
        return exports.handler.Info(name=_info[0], version=_info[1])

    def handle(self, session: str, input: str) -> str:
        if _handle is None:
            raise Err("no handler: decorate a function with @agent_sdk.agent(...)")
        try:
            answer = _handle(Session(session), input)
        except (AgentError, StateError) as e:
            raise Err(str(e))
        if not isinstance(answer, str):
            raise TypeError(_wrong_answer(answer))
        return answer


def _wrong_answer(answer: Any) -> str:
    """Why an answer that is not a `str` cannot be the turn's answer, naming it."""
    if answer is None:
        return "the handler returned None, not str (is a return missing?)"
    try:
        # One line: the host's error ends with the exception's last line.
        shown = reprlib.repr(answer).replace("\n", "\\n")
    except Exception:
        shown = "a value"
    return f"the handler returned {shown} ({type(answer).__name__}), not str"
