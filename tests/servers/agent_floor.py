"""The chat agent of examples/py-chat as a plain Python asyncio service: the thing a
Python author would write instead of a plugin. The Python floor of the agents
benchmark (host/benches/agents.rs).

One route, the one `agent-host serve` answers: POST
/v1/plugins/{plugin}/sessions/{session}/turns with the input as the body. A turn
reads the last 20 messages of the session's history (LRANGE), sends them with the
system prompt and the input to an OpenAI-compatible chat-completions endpoint,
streaming its answer (aiohttp's client, the deltas concatenated), appends both
messages (RPUSH + EXPIRE in one MULTI/EXEC, redis-py's asyncio client) and answers
{"output": reply}; errors answer {"error": {"kind", "message"}} as serve does.

    python agent_floor.py --redis redis://127.0.0.1:PORT --model-url http://127.0.0.1:PORT/v1

It needs aiohttp and redis-py (tests/servers/agent_floor.requirements.txt,
installed by tests/setup.sh into target/agent-floor-venv). It listens on a free
loopback port and prints `listening on http://127.0.0.1:PORT` once it accepts
connections.
"""

import argparse
import asyncio
import json

import aiohttp
import redis.asyncio as redis
from aiohttp import web

CONTEXT = 20
SYSTEM = "You are a helpful assistant. Answer briefly."
TTL = 3600


def error(status, kind, message):
    return web.json_response({"error": {"kind": kind, "message": message}}, status=status)


async def ask_model(app, messages):
    """The model's answer, streamed and concatenated."""
    request = {
        "model": app["model"],
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply = []
    async with app["http"].post(app["model_url"] + "/chat/completions", json=request) as response:
        if response.status != 200:
            raise ValueError(f"the model answered {response.status}")
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            for choice in json.loads(data).get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    reply.append(piece)
    if not reply:
        raise ValueError("the model answered no text")
    return "".join(reply)


async def turn(request):
    app = request.app
    session = request.match_info["session"]
    text = await request.text()
    key = f"floor:{{{session}}}:hist"
    store = app["redis"]
    try:
        history = await store.lrange(key, -CONTEXT, -1)
    except redis.RedisError as e:
        return error(503, "store_unavailable", f"redis call failed: {e}")
    messages = [{"role": "system", "content": SYSTEM}]
    messages += [json.loads(item) for item in history]
    user = {"role": "user", "content": text}
    messages.append(user)
    try:
        reply = await ask_model(app, messages)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        return error(422, "plugin", f"the model is unavailable ({e})")
    assistant = {"role": "assistant", "content": reply}
    try:
        async with store.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(user), json.dumps(assistant))
            pipe.expire(key, TTL)
            await pipe.execute()
    except redis.RedisError as e:
        return error(503, "store_unavailable", f"redis call failed: {e}")
    return web.json_response({"output": reply})


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True, help="redis://HOST:PORT")
    parser.add_argument("--model-url", required=True, help="the API base, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="bench")
    args = parser.parse_args()

    app = web.Application()
    # redis-py's default pool fails a command with "Too many connections" past 100
    # at once; this one waits for a free connection instead.
    pool = redis.BlockingConnectionPool.from_url(args.redis, max_connections=100)
    app["redis"] = redis.Redis(connection_pool=pool)
    # No cap on connections to the model (aiohttp's default is 100 at once).
    app["http"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    app["model_url"] = args.model_url.rstrip("/")
    app["model"] = args.model
    app.router.add_post("/v1/plugins/{plugin}/sessions/{session}/turns", turn)

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await app["http"].close()
        await app["redis"].aclose()
        await pool.disconnect()
        await runner.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
