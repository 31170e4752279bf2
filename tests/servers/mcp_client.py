"""An MCP client against `agent-host serve`'s /v1/mcp, for host/tests/mcp_serve.rs:
the official MCP Python SDK (`mcp`, pinned in mcp.requirements.txt;
tests/setup.sh installs it into target/mcp-venv).

    target/mcp-venv/bin/python tests/servers/mcp_client.py URL TOKEN STEPS

TOKEN may be "" (no Authorization header). STEPS is a JSON list, each step one of

    {"list": true}                                    tools/list
    {"call": TOOL, "session": S, "input": I,          tools/call; with "progress",
     "idempotency_key": K, "progress": true}          a progressToken and the
                                                      notifications it got

Connects over Streamable HTTP, initializes, runs the steps and prints one JSON
object: {"server": the initialize result, "steps": [one result per step]}, or
{"error": "..."} if the client failed (a refused token, a protocol error).
"""

import asyncio
import json
import sys

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def step(session, spec):
    if spec.get("list"):
        return dump(await session.list_tools())
    progress = []

    async def on_progress(value, total, message):
        progress.append({"progress": value, "message": message})

    meta = None
    if "idempotency_key" in spec:
        meta = {"idempotency_key": spec["idempotency_key"]}
    result = await session.call_tool(
        spec["call"],
        {"session": spec["session"], "input": spec["input"]},
        progress_callback=on_progress if spec.get("progress") else None,
        meta=meta,
    )
    out = dump(result)
    if spec.get("progress"):
        out["progress"] = progress
    return out


async def run(url, token, steps):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                server = dump(await session.initialize())
                results = [await step(session, spec) for spec in steps]
                return {"server": server, "steps": results}


def leaves(error):
    """The innermost errors of an exception group (anyio's task groups wrap them)."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def main():
    url, token, steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        out = asyncio.run(run(url, token, steps))
    except BaseException as error:  # noqa: BLE001 - reported to the test as JSON
        out = {"error": "; ".join(f"{type(e).__name__}: {e}" for e in leaves(error))}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
