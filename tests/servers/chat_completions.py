"""An OpenAI-compatible chat-completions stand-in on Python's standard
`http.server`, for the model-server tests (tests/tests/model_servers.rs).

It reads a request body the way `http.server` applications do: `Content-Length`
bytes, nothing else (a chunked body reads as empty, as in many small servers and
proxies). It answers like the axum fixture (tests/src/model_server.rs): "You said
"<last user message>"; I saw <n> messages.", as one JSON completion, or as an
event stream (one chunk per word, then a usage chunk if asked, then [DONE]) when
the request has `"stream": true` (unless started with --ignore-stream, like a
server that does not stream).

    python3 chat_completions.py --log FILE [--ignore-stream]

It listens on a free loopback port and prints it on the first line of stdout;
each request it gets is appended to FILE as one JSON line (method, path, headers
with lowercase names, body as text) before it is answered.
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chat-completions-stand-in"
    log_lock = threading.Lock()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.record(body)
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
        usage = {"prompt_tokens": len(messages), "completion_tokens": len(content.split()), "total_tokens": 0}
        if request.get("stream") is True and not self.server.ignore_stream:
            include_usage = (request.get("stream_options") or {}).get("include_usage") is True
            return self.stream(request.get("model"), content, usage if include_usage else None)
        self.answer(
            200,
            {
                "id": "chatcmpl-stand-in",
                "object": "chat.completion",
                "model": request.get("model"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": usage,
            },
        )

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

    def stream(self, model, content, usage):
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

        words = content.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            chunk = {"id": "chatcmpl-stand-in", "object": "chat.completion.chunk", "model": model}
            chunk["choices"] = [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]
            event(json.dumps(chunk))
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
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.log = args.log
    server.ignore_stream = args.ignore_stream
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
