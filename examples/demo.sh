#!/usr/bin/env bash
# Runs the chat-memory example plugin through `agent-host run` twice in one session:
# the second turn remembers the first. Uses $REDIS_URL if set, otherwise starts a
# throwaway redis-server on a free loopback port (stopped on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh

echo "demo: building agent-host and the chat-memory plugin" >&2
cargo build -q -p agent-host
cargo build -q --release --target wasm32-wasip2 --target-dir target/wasm-plugins -p chat-memory
plugin=target/wasm-plugins/wasm32-wasip2/release/chat_memory.wasm

if [ -z "${REDIS_URL:-}" ]; then
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  export REDIS_URL="redis://127.0.0.1:$port"
  echo "demo: started redis-server on port $port" >&2
fi

session="demo-$$"
for input in "Hello! I want to learn about sourdough baking." \
             "What flour works best for sourdough?"; do
  echo "> $input"
  ./target/debug/agent-host run "$plugin" --session "$session" --ttl 1h --input "$input"
done
