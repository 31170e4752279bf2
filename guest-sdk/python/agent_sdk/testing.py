"""Unit tests of a plugin with plain `python3`: an in-memory store with the host's
semantics behind `agent_sdk`'s state calls.

Outside a component (any interpreter that is not componentize-py's), `agent_sdk`
sends its state calls here instead of to the host, so a plugin's module imports
and runs under `python3 -m unittest` (or pytest):

    import unittest
    import app                                  # the plugin: @agent(...) def handle
    from agent_sdk.testing import Store

    class AppTest(unittest.TestCase):
        def test_two_turns(self):
            store = Store()
            self.assertEqual(store.run("alice", "hi"), "turn 1: hi")
            self.assertEqual(store.run("alice", "again"), "turn 2: again")
            self.assertEqual(store.session("alice").state, 2)

What the host does, for one plugin under one prefix:

- A turn (`Store.run`) commits its writes when the handler returns or raises
  `AgentError`/`StateError` (which `run` raises again); any other exception, or
  an answer that is not a `str`, writes nothing (the store is put back as the
  turn found it) and is raised.
- Every save bumps the session's version; `if_version` saves only over that
  version (0: only if there is no state), else `StateError("conflict")`. A save
  after a delete or clear starts again at 1.
- History: `append`/`last`/`history`/`pop`, at most 1,000 items a call and 10,000
  a session.
- Expiry runs on the store's own clock, which moves only with `Store.advance`: a
  save expires after its TTL or the default (`Store(default_ttl=...)`), as does an
  append; `touch` sets or removes it; `sliding_ttl=True` makes reads extend it.
  An expired session is gone whole, an expired value too.
- The host's limits (1 MiB a value, 8 MiB a turn, 10,000 values) and names (1 to
  512 bytes, no control characters), as the same `StateError` kinds.
- `sessions()` lists the committed sessions in order; `emit` collects chunks
  (`Store.emitted`).
- Schedules (`agent_sdk.schedule`) and cancels are written with the turn's
  commit, like its state writes: a turn that raises `AgentError`/`StateError`
  keeps them (so a plugin can answer an error and schedule its own retry); any
  other exception schedules and cancels nothing. A due time must be 1 s to 366
  days ahead on the store's clock and an input at most 64 KiB; ids count up in
  24 hex digits. `Store.scheduled()` lists them and `Store.run_due()` runs the
  ones due (move the clock with `Store.advance` first).

Not here: turns running at once (the host retries their conflicts), quotas and
the limit of schedules per turn, retry backoff, and HTTP (`agent_sdk.http` and
`agent_sdk.llm` need the host).
"""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import timedelta
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from agent_sdk._native import _agent_state as _W
from agent_sdk._native import _Err
from agent_sdk._native import _schedule as _S
from agent_sdk.schedule import Scheduled, _scheduled

__all__ = ["Store", "StoredSession", "run", "store"]

MAX_VALUE = 1 << 20
MAX_ITEMS_PER_CALL = 1000
MAX_HISTORY_ITEMS = 10_000
MAX_TURN_BYTES = 8 << 20
MAX_VALUES = 10_000
MIN_DELAY_MS = 1000
MAX_DELAY_MS = 366 * 24 * 3600 * 1000
MAX_SCHEDULE_INPUT = 64 << 10


def _fail(error: Any) -> None:
    raise _Err(error)


def _check_name(what: str, raw: Any) -> None:
    if not isinstance(raw, str) or raw == "":
        _fail(_W.Error_InvalidKey(f"invalid {what}: is empty"))
    size = len(raw.encode())
    if size > 512:
        _fail(_W.Error_InvalidKey(f"invalid {what}: is {size} bytes, over the limit of 512"))
    for pos, c in enumerate(raw):
        if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F:
            _fail(_W.Error_InvalidKey(f"invalid {what}: has a control character at char {pos}"))


def _integer(data: bytes) -> Optional[int]:
    """An integer as the stores read one: `0`, or an optional `-` and digits
    without a leading zero, within 64 bits."""
    if data == b"0":
        return 0
    digits = data[1:] if data.startswith(b"-") else data
    if not (1 <= len(digits) <= 19 and digits.isdigit() and not digits.startswith(b"0")):
        return None
    n = int(data)
    return n if -(2**63) <= n < 2**63 else None


class _Session:
    def __init__(self) -> None:
        self.state: Optional[Dict[str, Any]] = None  # value, version, written_at_ms, history_len
        self.history: List[bytes] = []
        self.expires: Optional[int] = None  # unix ms; None: never
        self.kept: List[Dict[str, Any]] = []

    def exists(self) -> bool:
        return self.state is not None or bool(self.history)


class _Data:
    def __init__(self) -> None:
        self.sessions: Dict[str, _Session] = {}
        self.values: Dict[str, Tuple[bytes, Optional[int]]] = {}
        self.schedules: Dict[str, _S.Scheduled] = {}  # pending, by id
        self.scheduled_count = 0  # schedules made so far (ids are made from it)

    def expire(self, now: int) -> None:
        live = lambda at: at is None or at > now  # noqa: E731
        self.sessions = {k: s for k, s in self.sessions.items() if live(s.expires) and s.exists()}
        self.values = {k: v for k, v in self.values.items() if live(v[1])}


Ttl = Union[int, float, timedelta, None]


def _ms(ttl: Ttl) -> Optional[int]:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    return int(seconds * 1000)


class Store:
    """An in-memory store for one plugin, with the host's semantics (see the
    module's doc). `default_ttl`, `sliding_ttl`, `keep_versions` are the plugin's
    settings of the same names; TTLs in seconds or a timedelta."""

    def __init__(self, default_ttl: Ttl = None, sliding_ttl: bool = False, keep_versions: int = 0):
        self._data = _Data()
        self._default_ttl = _ms(default_ttl)
        self._sliding = sliding_ttl
        self._keep = keep_versions
        self._now = int(time.time() * 1000)
        self._committed: Optional[_Data] = None
        self._turn_bytes = 0
        self._emitted: List[str] = []

    # -- turns --

    def run(self, session: str, input: str, handler: Optional[Callable[..., Any]] = None) -> str:
        """Runs one turn of the plugin's `@agent` handler (or `handler`) on
        `session` with `input`, as the host does, and returns its answer. Its
        writes, schedules and cancels included, are committed when it answers or
        raises `AgentError`/`StateError`."""
        import agent_sdk

        if handler is None:
            handler = agent_sdk._handle
        if handler is None:
            raise RuntimeError("no handler: import the plugin's module (its @agent function) first")
        if self._committed is not None:
            raise RuntimeError("a turn is already running on this store")
        try:
            _check_name("session id", session)
        except _Err as e:
            raise agent_sdk.StateError("invalid-key", e.value.value) from None
        self._data.expire(self._now)
        self._committed = copy.deepcopy(self._data)
        self._turn_bytes = 0
        self._emitted = []
        global _running
        previous, _running = _running, self
        try:
            answer = handler(agent_sdk.Session(session), input)
            if not isinstance(answer, str):
                raise TypeError(agent_sdk._wrong_answer(answer))
        except (agent_sdk.AgentError, agent_sdk.StateError):
            # The host's `err`: the turn's writes, schedules and cancels are committed.
            self._commit()
            raise
        except BaseException:
            self._data, self._committed = self._committed, None
            raise
        finally:
            _running = previous
        self._commit()
        return answer

    def _commit(self) -> None:
        before, self._committed = self._committed or _Data(), None
        for id, s in self._data.sessions.items():
            old = before.sessions.get(id)
            old = old.state if old else None
            if s.state == old:
                continue
            if s.state is not None:
                s.state["written_at_ms"] = self._now
                s.state["history_len"] = len(s.history)
            if old is not None and self._keep > 0:
                s.kept = [old] + s.kept[: self._keep - 1]

    def _op(self, op: Callable[["Store"], Any]) -> Any:
        """`op` inside the running turn, or as a turn of its own."""
        if self._committed is not None:
            return op(self)
        self._data.expire(self._now)
        self._committed, self._turn_bytes = copy.deepcopy(self._data), 0
        try:
            result = op(self)
        finally:
            self._commit()
        return result

    # -- looking at it from outside --

    def session(self, id: str) -> "StoredSession":
        """A session of the store, to look at or write to outside a turn."""
        return StoredSession(self, id)

    def value(self, key: str) -> Any:
        """The plugin-wide value at `key`, or None."""
        self._data.expire(self._now)
        found = self._data.values.get(key)
        return None if found is None else json.loads(found[0])

    def set_value(self, key: str, value: Any) -> None:
        """Sets a plugin-wide value, as another turn would."""
        self._op(lambda s: s._set(key, json.dumps(value).encode(), None))

    def sessions(self) -> List[str]:
        """The live sessions, in order."""
        self._data.expire(self._now)
        return sorted(self._data.sessions, key=lambda id: id.encode())

    @property
    def emitted(self) -> List[str]:
        """What the last turn emitted, chunk by chunk."""
        return list(self._emitted)

    def scheduled(self) -> List[Scheduled]:
        """The pending schedules of every session, soonest first."""
        return [_scheduled(s) for s in _soonest_first(self._data.schedules.values())]

    def run_due(self, handler: Optional[Callable[..., Any]] = None) -> List[Tuple[Scheduled, Any]]:
        """Runs the schedules due on the store's clock, soonest first, each as a
        turn (`run`) of its session with its input, and returns them with what
        their turns answered or raised (`AgentError`, `StateError`; anything else
        is raised). One whose turn raised stays pending with one more attempt: the
        host retries it later (with backoff, up to `schedule_retries`); here the
        next `run_due` runs it again. What that turn scheduled or cancelled is
        kept, as with any turn that raises `AgentError`/`StateError`."""
        import agent_sdk

        due = [s.id for s in _soonest_first(self._data.schedules.values()) if s.at_ms <= self._now]
        ran: List[Tuple[Scheduled, Any]] = []
        for id in due:
            s = self._data.schedules.pop(id, None)
            if s is None:  # an earlier turn of these cancelled it
                continue
            try:
                outcome: Any = self.run(s.session, s.input, handler)
            except (agent_sdk.AgentError, agent_sdk.StateError) as e:
                outcome = e
                s.attempts += 1
                self._data.schedules[id] = s
            ran.append((_scheduled(s), outcome))
        return ran

    def advance(self, seconds: Ttl) -> None:
        """Moves the store's clock on: TTLs run out as if that much time had passed."""
        self._now += _ms(seconds) or 0

    # -- the calls of agent-state, with the host's rules --

    def _ttl_ms(self, seconds: Optional[int]) -> Optional[int]:
        if seconds == 0:
            _fail(_W.Error_InvalidArgument("ttl-seconds must be at least 1"))
        return None if seconds is None else self._now + seconds * 1000

    def _size(self, size: int) -> None:
        if size > MAX_VALUE:
            _fail(_W.Error_TooLarge(MAX_VALUE))

    def _charge(self, size: int) -> None:
        if self._turn_bytes + size > MAX_TURN_BYTES:
            _fail(_W.Error_QuotaExceeded(f"a turn may write at most {MAX_TURN_BYTES} bytes"))
        self._turn_bytes += size

    def _session(self, id: str) -> _Session:
        _check_name("session id", id)
        return self._data.sessions.setdefault(id, _Session())

    def _slide(self, id: str) -> None:
        s = self._data.sessions.get(id)
        if self._sliding and self._default_ttl is not None and s and s.exists():
            if s.expires is not None:
                s.expires = max(s.expires, self._now + self._default_ttl)

    def load(self, id: str) -> Any:
        state = self._session(id).state
        self._slide(id)
        return None if state is None else _W.Entry(state["value"], state["version"])

    def save(self, id: str, value: bytes, ttl: Optional[int], if_version: Optional[int]) -> int:
        _check_name("session id", id)
        self._size(len(value))
        expires = self._ttl_ms(ttl)
        if ttl is None and self._default_ttl is not None:
            expires = self._now + self._default_ttl
        self._charge(len(value))
        s = self._session(id)
        current = 0 if s.state is None else s.state["version"]
        if if_version is not None and if_version != current:
            _fail(_W.Error_Conflict())
        s.state = {"value": bytes(value), "version": current + 1,
                   "written_at_ms": self._now, "history_len": len(s.history)}
        s.expires = expires
        return current + 1

    def delete(self, id: str) -> bool:
        s = self._session(id)
        existed, s.state = s.state is not None, None
        return existed

    def append(self, id: str, items: List[bytes]) -> int:
        _check_name("session id", id)
        if len(items) > MAX_ITEMS_PER_CALL:
            _fail(_W.Error_QuotaExceeded(f"at most {MAX_ITEMS_PER_CALL} items per append"))
        size = sum(len(i) for i in items)
        self._size(size)
        s = self._session(id)
        if not items:
            return len(s.history)
        if len(s.history) + len(items) > MAX_HISTORY_ITEMS:
            _fail(_W.Error_QuotaExceeded(f"history would be longer than {MAX_HISTORY_ITEMS} items"))
        self._charge(size)
        s.history.extend(bytes(i) for i in items)
        s.expires = None if self._default_ttl is None else self._now + self._default_ttl
        return len(s.history)

    def items(self, id: str, last: Optional[int]) -> List[bytes]:
        n = MAX_ITEMS_PER_CALL if last is None else min(last, MAX_ITEMS_PER_CALL)
        history = self._session(id).history
        self._slide(id)
        return list(history[len(history) - n:]) if n > 0 else []

    def pop(self, id: str) -> Optional[bytes]:
        history = self._session(id).history
        return history.pop() if history else None

    def touch(self, id: str, ttl: Optional[int]) -> bool:
        _check_name("session id", id)
        expires = self._ttl_ms(ttl)
        s = self._session(id)
        if not s.exists():
            return False
        s.expires = expires
        return True

    def ttl(self, id: str) -> Optional[int]:
        s = self._session(id)
        if not s.exists() or s.expires is None:
            return None
        return -(-(s.expires - self._now) // 1000)  # rounded up, as the host does

    def clear(self, id: str) -> bool:
        _check_name("session id", id)
        s = self._data.sessions.pop(id, None)
        return s is not None and s.exists()

    def list_sessions(self, cursor: Optional[str], limit: int) -> Any:
        if cursor is not None:
            _check_name("cursor", cursor)
        if limit == 0:
            _fail(_W.Error_InvalidArgument("limit must be at least 1"))
        limit = min(limit, MAX_ITEMS_PER_CALL)
        committed = self._committed or self._data
        ids = sorted((id for id, s in committed.sessions.items() if s.exists()), key=str.encode)
        if cursor is not None:
            ids = [id for id in ids if id.encode() > cursor.encode()]
        page = ids[:limit]
        return _W.Page(page, page[-1] if len(ids) > limit else None)

    def get(self, key: str) -> Optional[bytes]:
        _check_name("key", key)
        found = self._data.values.get(key)
        return None if found is None else found[0]

    def set(self, key: str, value: bytes, ttl: Optional[int]) -> None:
        _check_name("key", key)
        self._size(len(value))
        expires = self._ttl_ms(ttl)
        self._charge(len(value))
        self._set(key, bytes(value), expires)

    def _set(self, key: str, value: bytes, expires: Optional[int]) -> None:
        if key not in self._data.values and len(self._data.values) >= MAX_VALUES:
            _fail(_W.Error_QuotaExceeded(f"at most {MAX_VALUES} plugin-wide values"))
        self._data.values[key] = (value, expires)

    def remove(self, key: str) -> bool:
        _check_name("key", key)
        return self._data.values.pop(key, None) is not None

    def increment(self, key: str, delta: int) -> int:
        _check_name("key", key)
        value, expires = self._data.values.get(key, (b"0", None))
        current = _integer(value)
        if current is None:
            _fail(_W.Error_Internal("the value is not a 64-bit integer"))
        new = current + delta
        if not -(2**63) <= new < 2**63:
            _fail(_W.Error_Internal("the result would overflow a 64-bit integer"))
        self._set(key, str(new).encode(), expires)
        return new

    # -- the calls of schedule --

    def _at(self, session: str, when_ms: int, input: str) -> str:
        _check_name("session id", session)
        if when_ms < self._now + MIN_DELAY_MS:
            away = when_ms - self._now
            _fail(_W.Error_InvalidArgument(
                f"a schedule must be due at least 1s from now (this one is {away} ms away)"
            ))
        if when_ms > self._now + MAX_DELAY_MS:
            _fail(_W.Error_InvalidArgument("a schedule must be due at most 366 days from now"))
        most = min(MAX_SCHEDULE_INPUT, MAX_VALUE)
        if len(input.encode()) > most:
            _fail(_W.Error_TooLarge(most))
        self._data.scheduled_count += 1
        id = f"{self._data.scheduled_count:024x}"
        self._data.schedules[id] = _S.Scheduled(id, session, when_ms, input, 0)
        return id

    def _after(self, session: str, delay_ms: int, input: str) -> str:
        return self._at(session, self._now + delay_ms, input)

    def _cancel(self, id: str) -> bool:
        if not re.fullmatch("[0-9a-f]{24}", id):
            _fail(_W.Error_InvalidArgument(f'"{id}" is not a schedule id (24 lowercase hex digits)'))
        return self._data.schedules.pop(id, None) is not None

    def _pending(self, session: str) -> List[Any]:
        _check_name("session id", session)
        of_session = (s for s in self._data.schedules.values() if s.session == session)
        return [copy.copy(s) for s in _soonest_first(of_session)]


def _soonest_first(schedules: Iterable[Any]) -> List[Any]:
    """Schedules in the order `pending` lists them."""
    return sorted(schedules, key=lambda s: (s.at_ms, s.id))


class StoredSession:
    """A session of a `Store`, seen from outside any turn."""

    def __init__(self, store: Store, id: str):
        self._store = store
        self.id = id

    def _get(self) -> Optional[_Session]:
        self._store._data.expire(self._store._now)
        return self._store._data.sessions.get(self.id)

    @property
    def exists(self) -> bool:
        """Whether the session has a state document or history."""
        return self.id in self._store.sessions()

    @property
    def state(self) -> Any:
        """The state document, or None."""
        s = self._get()
        return None if s is None or s.state is None else json.loads(s.state["value"])

    @property
    def version(self) -> Optional[int]:
        """The state document's version, or None."""
        s = self._get()
        return None if s is None or s.state is None else s.state["version"]

    @property
    def history(self) -> List[Any]:
        """The whole history, oldest first."""
        s = self._get()
        return [] if s is None else [json.loads(i) for i in s.history]

    @property
    def ttl(self) -> Optional[float]:
        """Seconds left before the session expires, or None (never, or no session)."""
        s = self._get()
        if s is None or s.expires is None:
            return None
        return (s.expires - self._store._now) / 1000

    def save(self, value: Any) -> int:
        """Saves the state document as another turn would (its version goes up)."""
        data = json.dumps(value, separators=(",", ":")).encode()
        return self._store._op(lambda s: s.save(self.id, data, None, None))

    def append(self, *items: Any) -> int:
        """Appends to the history as another turn would."""
        data = [json.dumps(i, separators=(",", ":")).encode() for i in items]
        return self._store._op(lambda s: s.append(self.id, data))


_running: Optional[Store] = None
_default = Store()


def _current() -> Store:
    return _running or _default


def _turn(op: Callable[[Store], Any]) -> Any:
    return _current()._op(op)


def run(session: str, input: str, handler: Optional[Callable[..., Any]] = None) -> str:
    """Runs one turn on the module's store (see `Store.run`)."""
    return _default.run(session, input, handler)


def store() -> Store:
    """The module's store: the one `run` uses, and state calls made outside a turn."""
    return _default
