"""An MCP server for the SDKs' MCP clients, written with the official Python SDK
(`mcp==2.3.0`, pinned in mcp.requirements.txt; tests/setup.sh installs it
into target/mcp-venv). In mcp 2 FastMCP is `mcp.server.mcpserver.MCPServer`.

    target/mcp-venv/bin/python tests/servers/mcp_server.py [--json] [--page-size N]

It serves the Streamable HTTP transport at `http://127.0.0.1:PORT/mcp` on a free
loopback port, printed alone on stdout's first line once it listens (no polling),
with sessions (`Mcp-Session-Id`). By default each request is answered with an
event stream (`text/event-stream`), and `add` sends a log notification on it
before its result; with `--json` every answer is one `application/json` body.
`--page-size N` pages `tools/list` N tools at a time (`nextCursor`), which the
SDK's own server does not do.

Tools:
- `add(a, b)`: a + b (logs "adding A and B" first).
- `fail()`: raises ToolError, so its result has `isError: true` with the message.
- `refuse()`: raises MCPError, so the answer is a JSON-RPC error (code -32001).
- `headers()`: the request headers an MCP client and the host set, as JSON
  (`authorization`, `mcp-session-id`, `mcp-protocol-version`).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import warnings

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import ListToolsResult

parser = argparse.ArgumentParser()
parser.add_argument("--json", action="store_true", help="answer application/json, not event streams")
parser.add_argument("--page-size", type=int, default=0, help="tools per tools/list page (0: all)")
options = parser.parse_args()

# `add` logs on purpose (a notification before its result): the 2026 revision
# deprecates logging, which this 2025-11-25 session still has.
warnings.filterwarnings("ignore", message="The logging capability is deprecated")


class PagedServer(MCPServer):
    """`tools/list` in pages of `--page-size`, the cursor being the next index."""

    async def _handle_list_tools(self, ctx, params) -> ListToolsResult:  # type: ignore[override]
        tools = await self.list_tools()
        if options.page_size <= 0:
            return ListToolsResult(tools=tools)
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + options.page_size
        return ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)


mcp = PagedServer("agent-host-test-mcp", log_level="WARNING")


@mcp.tool()
async def add(a: int, b: int, ctx: Context) -> int:
    """Adds two integers."""
    await ctx.info(f"adding {a} and {b}")
    return a + b


@mcp.tool()
def fail() -> str:
    """Always fails (a tool error: isError)."""
    raise ToolError("the tool failed on purpose")


@mcp.tool()
def refuse() -> str:
    """Always refused (a JSON-RPC error)."""
    raise MCPError(-32001, "refused on purpose")


@mcp.tool()
def headers(ctx: Context) -> str:
    """The request headers a client and the host set, as JSON."""
    seen = ctx.headers or {}
    names = ("authorization", "mcp-session-id", "mcp-protocol-version")
    return json.dumps({name: seen.get(name) for name in names})


async def main() -> None:
    app = mcp.streamable_http_app(json_response=options.json)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        while not server.started:
            await anyio.sleep(0.01)
        print(sock.getsockname()[1], flush=True)


if __name__ == "__main__":
    try:
        anyio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
