"""An agent in Python that uses tools: a calculator and notes kept in the
session, and, when `MCP_URL` is set, every tool of that MCP server (listed in the
plugin's config: its `env` and an `[[plugin.outbound]]` origin). The model (any
OpenAI-compatible server) decides when to call them;
`Chat.stream_with_tools` runs the calls and sends the results back until the
model answers. The whole exchange (the user's message, the calls, their results,
the answer) goes into the session's history, so the next turn's model sees what
the tools said; the notes go into the session's state.

Build: guest-sdk/python/build.sh examples/py-tools app target/py_tools.wasm
"""

import os

from agent_sdk import AgentError, Handler, Session, agent, emit, mcp
from agent_sdk.http import HttpError
from agent_sdk.llm import Chat, MaxStepsError, tool, trim_history

__all__ = ["Handler"]

CONTEXT = 40
SYSTEM = (
    "You are a helpful assistant. Use the calculator for arithmetic, "
    "and the notes tools to remember things the user asks you to."
)


def number(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


@tool
def calculate(a: float, op: str, b: float) -> str:
    """Computes `a op b`, where op is one of + - * /."""
    if op == "+":
        return number(a + b)
    if op == "-":
        return number(a - b)
    if op == "*":
        return number(a * b)
    if op == "/":
        if b == 0:
            raise ValueError("division by zero")
        return number(a / b)
    raise ValueError(f"unknown operator {op!r}")


@agent(name="py-tools", version="0.1.0")
def handle(session: Session, input: str) -> str:
    @tool
    def save_note(text: str) -> str:
        """Saves a note for later in this conversation."""
        state = session.load() or {}
        notes = state.get("notes", []) + [text]
        session.save({**state, "notes": notes})
        return f"saved ({len(notes)} notes)"

    @tool
    def list_notes() -> str:
        """Lists the notes saved so far."""
        notes = (session.load() or {}).get("notes", [])
        return "\n".join(f"- {n}" for n in notes) or "no notes yet"

    system = os.environ.get("SYSTEM_PROMPT", SYSTEM)
    history = trim_history(session.last(CONTEXT), CONTEXT, max_tokens=6000)
    messages = [{"role": "system", "content": system}, *history, {"role": "user", "content": input}]
    start = len(messages) - 1
    tools = [calculate, save_note, list_notes]
    try:
        if os.environ.get("MCP_URL"):
            # The server's tools first, named mcp_<name> so they cannot clash.
            tools = mcp.connect(os.environ["MCP_URL"]).chat_tools(prefix="mcp_") + tools
        chat = Chat.from_env()
        if os.environ.get("MODEL_STREAM") == "false":
            reply = chat.complete_with_tools(messages, tools)
            emit(reply)
        else:
            reply = chat.stream_with_tools(messages, tools)
    except MaxStepsError as e:
        raise AgentError(f"the model kept calling tools ({e})")
    except (HttpError, mcp.McpError) as e:
        raise AgentError(f"the model or the MCP server is unavailable ({e})")
    # messages[start:]: the user's message, each call and result, the answer.
    session.append(*messages[start:])
    return reply
