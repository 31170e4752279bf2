"""Test plugin that does not build: a syntax error on line 13 (see
tests/tests/errors.rs). tests/build.rs does not build it."""

from agent_sdk import Handler, Session, agent

__all__ = ["Handler"]


@agent(name="py-syntax")
def handle(session: Session, input: str) -> str:
    if input == "hello":
        return "hi"
    return f"you said {input"
