"""An OpenAI-compatible chat-completions stand-in on Python's standard
`http.server`, for the model-server tests (tests/tests/model_servers.rs).

It reads a request body the way `http.server` applications do: `Content-Length`
bytes, nothing else (a chunked body reads as empty, as in many small servers and
proxies). It answers like the axum fixture (tests/src/model_server.rs): "You said
"<last user message>"; I saw <n> messages.", as one JSON completion, or as an
event stream (one chunk per word, then a usage chunk if asked, then [DONE]) when
the request has `"stream": true` (unless started with --ignore-stream, like a
server that does not stream).

With `tools` in the request it answers as the axum fixture's tool mode does
(`tool_answer` here, `tool_answer` there; tests/tests/tools.rs): while the
conversation since the last user message has had fewer rounds of tool calls than
asked (`steps=N` in the user's text, 1 by default; `forever`: always), it calls
a tool: the first tool whose name is a word of the text, else the first tool,
with arguments from the text (its numbers, in order, for the number and integer
properties sorted by name; the text for string properties); `unknown-tool` calls
a tool that does not exist, `bad-args` sends arguments that are not JSON,
`parallel` makes two calls in one answer. Once done it answers
`Tools said ["<result>", ...]; I saw <n> messages.`, quoting the results of the
last round. Tool calls stream in pieces by index, as OpenAI sends them.

With --fail-endlessly it answers every request 500, with an error body whose
first 2 KiB come at once and whose rest never does (a broken upstream behind a
proxy that streams): a client that waits for the whole body waits forever.

    python3 chat_completions.py --log FILE [--ignore-stream | --fail-endlessly]

It listens on a free loopback port and prints it on the first line of stdout;
each request it gets is appended to FILE as one JSON line (method, path, headers
with lowercase names, body as text) before it is answered.
"""

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


DIRECTIVES = ("forever", "unknown-tool", "bad-args", "parallel")
NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def compact(value):
    """JSON as serde_json writes it (the axum fixture): no spaces, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def tool_answer(request):
    """The tool mode's answer: None without tools, else ("calls", calls) or
    ("text", content)."""
    tools = [t for t in request.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if not tools:
        return None
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    last_user = users[-1] if users else -1
    text = messages[last_user].get("content") if users else ""
    text = text if isinstance(text, str) else ""
    words = text.lower().split()
    since = messages[last_user + 1 :]
    rounds = sum(1 for m in since if m.get("role") == "assistant" and m.get("tool_calls"))
    steps = 1
    for word in words:
        if word.startswith("steps="):
            try:
                steps = int(word[len("steps=") :])
            except ValueError:
                steps = 0
    if "forever" in words or rounds < steps:
        return ("calls", tool_calls(tools, text, words, rounds))
    results = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        results.insert(0, m.get("content"))
    return ("text", f"Tools said {compact(results)}; I saw {len(messages)} messages.")


def tool_calls(tools, text, words, rounds):
    chosen = next((t for t in tools if str(t["function"].get("name", "")).lower() in words), tools[0])
    name = "no_such_tool" if "unknown-tool" in words else chosen["function"].get("name")
    plain = " ".join(w for w in text.split() if w.lower() not in DIRECTIVES and not w.lower().startswith("steps="))
    numbers = NUMBER.findall(plain)
    properties = (chosen["function"].get("parameters") or {}).get("properties") or {}
    arguments = {}
    for key in sorted(properties):
        kind = (properties[key] or {}).get("type")
        if kind in ("number", "integer"):
            raw = numbers.pop(0) if numbers else "0"
            arguments[key] = int(float(raw)) if kind == "integer" or "." not in raw else float(raw)
        elif kind == "boolean":
            arguments[key] = True
        elif kind == "array":
            arguments[key] = []
        elif kind == "object":
            arguments[key] = {}
        else:
            arguments[key] = plain
    encoded = "{not json" if "bad-args" in words else compact(arguments)
    count = 2 if "parallel" in words else 1
    return [
        {"id": f"call_{rounds}_{i}", "type": "function", "function": {"name": name, "arguments": encoded}}
        for i in range(count)
    ]


def tool_call_chunks(calls):
    """The calls as a stream sends them: per call a first piece with its id and
    name, then its arguments in pieces of 5 characters, by index."""
    for i, call in enumerate(calls):
        first = {"index": i, "id": call["id"], "type": "function"}
        first["function"] = {"name": call["function"]["name"], "arguments": ""}
        yield {"role": "assistant", "content": None, "tool_calls": [first]}
        arguments = call["function"]["arguments"]
        for at in range(0, len(arguments), 5):
            yield {"tool_calls": [{"index": i, "function": {"arguments": arguments[at : at + 5]}}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chat-completions-stand-in"
    log_lock = threading.Lock()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.record(body)
        if self.server.fail_endlessly:
            return self.fail_endlessly()
        if self.path != "/v1/chat/completions":
            return self.answer(404, {"error": {"message": f"no route {self.path}"}})
        try:
            request = json.loads(body) if body else {}
        except ValueError as e:
            return self.answer(400, {"error": {"message": f"invalid JSON: {e}"}})
        messages = request.get("messages") or []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last = users[-1].get("content", "") if users else ""
        content = f"You said {json.dumps(last)}; I saw {len(messages)} messages."
        calls = None
        tooled = tool_answer(request)
        if tooled is not None and tooled[0] == "text":
            content = tooled[1]
        elif tooled is not None:
            calls = tooled[1]
        said = content if calls is None else " ".join(c["function"]["arguments"] for c in calls)
        usage = {"prompt_tokens": len(messages), "completion_tokens": len(said.split()), "total_tokens": 0}
        if request.get("stream") is True and not self.server.ignore_stream:
            include_usage = (request.get("stream_options") or {}).get("include_usage") is True
            return self.stream(request.get("model"), content, usage if include_usage else None, calls)
        if calls is None:
            message, finish = {"role": "assistant", "content": content}, "stop"
        else:
            message, finish = {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
        self.answer(
            200,
            {
                "id": "chatcmpl-stand-in",
                "object": "chat.completion",
                "model": request.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            },
        )

    def fail_endlessly(self):
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        start = b"upstream failed: " + b"E" * 2048
        self.wfile.write(b"%x\r\n%s\r\n" % (len(start), start))
        self.wfile.flush()
        # The rest never comes; the client gives up (or the test ends).
        while True:
            time.sleep(60)

    def do_GET(self):
        self.record(b"")
        self.answer(404, {"error": {"message": f"no route {self.path}"}})

    def record(self, body):
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": [[n.lower(), v] for n, v in self.headers.items()],
            "body": body.decode(errors="replace"),
        }
        with self.log_lock, open(self.server.log, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def answer(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream(self, model, content, usage, calls=None):
        chunked = self.request_version == "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

        def event(data):
            payload = f"data: {data}\n\n".encode()
            if chunked:
                payload = f"{len(payload):x}\r\n".encode() + payload + b"\r\n"
            self.wfile.write(payload)
            self.wfile.flush()

        def delta(value, finish=None):
            chunk = {"id": "chatcmpl-stand-in", "object": "chat.completion.chunk", "model": model}
            chunk["choices"] = [{"index": 0, "delta": value, "finish_reason": finish}]
            event(json.dumps(chunk))

        if calls is not None:
            for piece in tool_call_chunks(calls):
                delta(piece)
            delta({}, "tool_calls")
        else:
            words = content.split(" ")
            for i, word in enumerate(words):
                delta({"content": word if i == 0 else " " + word})
        if usage is not None:
            event(json.dumps({"id": "chatcmpl-stand-in", "choices": [], "usage": usage}))
        event("[DONE]")
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def log_message(self, format, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="append each request here as a JSON line")
    parser.add_argument("--ignore-stream", action="store_true", help="answer plain JSON even when asked to stream")
    parser.add_argument("--fail-endlessly", action="store_true", help="answer 500 with a body that never ends")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.log = args.log
    server.ignore_stream = args.ignore_stream
    server.fail_endlessly = args.fail_endlessly
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
