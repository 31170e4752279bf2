"""What componentize-py's bindings give agent_sdk, for a plain interpreter: the
WIT imports `agent-state`, `output` and `schedule` and the `handler` export,
answered by the in-memory store of `agent_sdk.testing` (the store of the running
turn, or the module's store outside a turn). Inside a component agent_sdk uses the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional


def _turn(op: Callable[[Any], Any]) -> Any:
    from agent_sdk import testing

    return testing._turn(op)


class _Err(Exception):
    """componentize-py's `Err`: a WIT error, in `value`."""

    def __init__(self, value: Any):
        super().__init__(value)
        self.value = value


def _error(name: str, has_value: bool = True) -> type:
    if has_value:
        return type(name, (), {"__init__": lambda self, value: setattr(self, "value", value)})
    return type(name, (), {})


class _agent_state:  # noqa: N801 - stands in for the module wit_world.imports.agent_state
    Error_InvalidKey = _error("Error_InvalidKey")
    Error_InvalidArgument = _error("Error_InvalidArgument")
    Error_TooLarge = _error("Error_TooLarge")
    Error_QuotaExceeded = _error("Error_QuotaExceeded")
    Error_Conflict = _error("Error_Conflict", has_value=False)
    Error_Unavailable = _error("Error_Unavailable")
    Error_Internal = _error("Error_Internal")

    class SaveOptions:
        def __init__(self, ttl_seconds: Optional[int] = None, if_version: Optional[int] = None):
            self.ttl_seconds = ttl_seconds
            self.if_version = if_version

    class Entry:
        def __init__(self, value: bytes, version: int):
            self.value = value
            self.version = version

    class Page:
        def __init__(self, sessions: List[str], cursor: Optional[str]):
            self.sessions = sessions
            self.cursor = cursor

    @staticmethod
    def load(session: str) -> Any:
        return _turn(lambda s: s.load(session))

    @staticmethod
    def save(session: str, value: bytes, options: Any) -> int:
        return _turn(lambda s: s.save(session, value, options.ttl_seconds, options.if_version))

    @staticmethod
    def delete(session: str) -> bool:
        return _turn(lambda s: s.delete(session))

    @staticmethod
    def append(session: str, items: List[bytes]) -> int:
        return _turn(lambda s: s.append(session, items))

    @staticmethod
    def items(session: str, last: Optional[int]) -> List[bytes]:
        return _turn(lambda s: s.items(session, last))

    @staticmethod
    def pop(session: str) -> Optional[bytes]:
        return _turn(lambda s: s.pop(session))

    @staticmethod
    def touch(session: str, ttl_seconds: Optional[int]) -> bool:
        return _turn(lambda s: s.touch(session, ttl_seconds))

    @staticmethod
    def ttl(session: str) -> Optional[int]:
        return _turn(lambda s: s.ttl(session))

    @staticmethod
    def clear(session: str) -> bool:
        return _turn(lambda s: s.clear(session))

    @staticmethod
    def list_sessions(cursor: Optional[str], limit: int) -> Any:
        return _turn(lambda s: s.list_sessions(cursor, limit))

    @staticmethod
    def get(key: str) -> Optional[bytes]:
        return _turn(lambda s: s.get(key))

    @staticmethod
    def set(key: str, value: bytes, ttl_seconds: Optional[int]) -> None:
        return _turn(lambda s: s.set(key, value, ttl_seconds))

    @staticmethod
    def remove(key: str) -> bool:
        return _turn(lambda s: s.remove(key))

    @staticmethod
    def increment(key: str, delta: int) -> int:
        return _turn(lambda s: s.increment(key, delta))


class _schedule:  # noqa: N801 - stands in for wit_world.imports.schedule
    @dataclass
    class Scheduled:
        id: str
        session: str
        at_ms: int
        input: str
        attempts: int

    @staticmethod
    def at(session: str, when_ms: int, input: str) -> str:
        return _turn(lambda s: s._at(session, when_ms, input))

    @staticmethod
    def after(session: str, delay_ms: int, input: str) -> str:
        return _turn(lambda s: s._after(session, delay_ms, input))

    @staticmethod
    def cancel(id: str) -> bool:
        return _turn(lambda s: s._cancel(id))

    @staticmethod
    def pending(session: str) -> List[Any]:
        return _turn(lambda s: s._pending(session))


class _output:  # noqa: N801 - stands in for wit_world.imports.output
    @staticmethod
    def emit(chunk: str) -> None:
        from agent_sdk import testing

        testing._current()._emitted.append(chunk)


class _exports:  # noqa: N801 - stands in for wit_world.exports
    class Handler:
        pass

    class handler:  # noqa: N801
        class Info:
            def __init__(self, name: str, version: str):
                self.name = name
                self.version = version
