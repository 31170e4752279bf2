"""Test plugin: an MCP client (`agent_sdk.mcp`), the same as `mcp-probe` (Rust,
whose doc says what each input does) and `js-mcp-probe`: `URL tools` answers the
tool names as a JSON list, `URL call NAME JSONARGS` the tool's text or
`error MESSAGE`."""

import json

from agent_sdk import AgentError, Handler, Session, agent, mcp
from agent_sdk.http import HttpError

__all__ = ["Handler"]


def _run(input: str) -> str:
    words = input.split(" ", 3)
    if len(words) < 2:
        raise AgentError("usage: URL tools | URL call NAME JSONARGS")
    url, command = words[0], words[1]
    client = mcp.connect(url)
    if command == "tools":
        return json.dumps([tool.name for tool in client.tools()])
    if command == "call":
        name = words[2] if len(words) > 2 else ""
        args = json.loads(words[3]) if len(words) > 3 else {}
        return client.call(name, args)
    raise AgentError(f"unknown command {command!r}")


@agent(name="py-mcp-probe", version="0.1.0")
def handle(session: Session, input: str) -> str:
    try:
        return _run(input)
    except (mcp.McpError, HttpError) as e:
        return f"error {e}"
