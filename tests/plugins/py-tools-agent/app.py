"""Test plugin: a tool loop in Python; the same as `tools-agent` (Rust) and
`js-tools-agent`. Tools: `add(a, b)`, `divide(a, b)` (an error for b = 0, which
the model is told) and `note(text)`, which keeps the note in the session's state
(`{"notes": [...]}`). The history keeps every message of each turn (the user's,
the tool calls, their results, the answer) and the last 40 of them, trimmed so a
call is not cut from its results, go to the model with the next input. The
answer is streamed unless `MODEL_STREAM = "false"`; a failed model (or one that
calls tools 8 times without answering) is the error "the model is unavailable
(...)", and the history is left as it was. With `MCP_URL` set, the tools of that
MCP server come first, prefixed `mcp_` (`mcp_add`...); an MCP server that cannot
be reached is the error "the MCP server is unavailable (...)".

Build: guest-sdk/python/build.sh tests/plugins/py-tools-agent app py_tools_agent.wasm
"""

import os

from agent_sdk import AgentError, Handler, Session, agent, emit, mcp
from agent_sdk.http import HttpError
from agent_sdk.llm import Chat, tool, trim_history

__all__ = ["Handler"]

CONTEXT = 40
SYSTEM = "You are a helpful assistant. Use the tools for arithmetic and notes."


def number(value: float) -> str:
    """A number as the three languages write it: 5, 2.5."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


@tool
def add(a: float, b: float) -> str:
    """Adds two numbers."""
    return number(a + b)


@tool
def divide(a: float, b: float) -> str:
    """Divides a by b."""
    if b == 0:
        raise ValueError("division by zero")
    return number(a / b)


@agent(name="py-tools-agent", version="0.1.0")
def handle(session: Session, input: str) -> str:
    @tool
    def note(text: str) -> str:
        """Keeps a note in the session."""
        state = session.load() or {}
        notes = state.get("notes", []) + [text]
        session.save({**state, "notes": notes})
        return f"noted, {len(notes)} in all"

    history = trim_history(session.last(CONTEXT), CONTEXT)
    messages = [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": input}]
    start = len(messages) - 1
    tools = []
    if os.environ.get("MCP_URL"):
        try:
            tools = mcp.connect(os.environ["MCP_URL"]).chat_tools("mcp_")
        except (HttpError, mcp.McpError) as e:
            raise AgentError(f"the MCP server is unavailable ({e})")
    tools += [add, divide, note]
    try:
        chat = Chat.from_env()
        if os.environ.get("MODEL_STREAM") == "false":
            reply = chat.complete_with_tools(messages, tools)
            emit(reply)
        else:
            reply = chat.stream_with_tools(messages, tools)
    except HttpError as e:
        raise AgentError(f"the model is unavailable ({e})")
    session.append(*messages[start:])
    return reply
