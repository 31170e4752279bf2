#!/usr/bin/env bash
# Runs the chat-memory example plugin through `agent-host run` twice in one session:
# the second turn remembers the first. No server needed: without $REDIS_URL the state
# goes to the embedded store file (target/agent-host/demo-state.redb, or
# $AGENT_HOST_STATE), so running the demo again continues the conversation.
# With $REDIS_URL set, the state goes to that Redis instead.
#
# It installs only what it runs: the wasm32-wasip2 target of the pinned toolchain
# (rustup reads rust-toolchain.toml). The Python and JavaScript toolchains, Redis
# and nginx are for the tests (tests/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "demo: adding the wasm32-wasip2 target" >&2
  rustup target add wasm32-wasip2
fi

echo "demo: building agent-host and the chat-memory plugin" >&2
cargo build -q -p agent-host
cargo build -q --release --target wasm32-wasip2 --target-dir target/wasm-plugins -p chat-memory
agent_host="${CARGO_TARGET_DIR:-target}/debug/agent-host"
plugin=target/wasm-plugins/wasm32-wasip2/release/chat_memory.wasm
export AGENT_HOST_STATE="${AGENT_HOST_STATE:-target/agent-host/demo-state.redb}"
if [ -n "${REDIS_URL:-}" ]; then
  echo "demo: state in Redis (\$REDIS_URL)" >&2
else
  echo "demo: state in the embedded store $AGENT_HOST_STATE" >&2
fi

session="demo"
for input in "Hello! I want to learn about sourdough baking." \
             "What flour works best for sourdough?"; do
  echo "> $input"
  "$agent_host" run "$plugin" --session "$session" --ttl 1h --input "$input"
done
