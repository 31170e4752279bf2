"""Test plugin: appends its input to the session's history, then fails the way the
input says: an exception nothing catches, an answer that is not a str, or an
AgentError (see tests/tests/errors.rs)."""

from agent_sdk import AgentError, Handler, Session, agent

__all__ = ["Handler"]


def _raise() -> str:
    raise TypeError("x")


def _refuse() -> str:
    raise AgentError("refused on purpose")


WAYS = {
    "raise-error": _raise,
    "return-number": lambda: 42,
    "return-dict": lambda: {"answer": 42},
    "return-none": lambda: None,
    "agent-error": _refuse,
    "ok": lambda: "ok",
}


@agent(name="py-errors")
def handle(session: Session, input: str) -> str:
    session.append(input)
    way = WAYS.get(input)
    if way is None:
        raise AgentError(f"unknown way {input!r}")
    return way()
