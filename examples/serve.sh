#!/usr/bin/env bash
# `agent-host serve` with the sample config (examples/agent-host.toml: two tenants,
# embedded store), driven with curl: two turns, the session, the list, a refused
# call of the other tenant, health and metrics; then SIGTERM. Set $REDIS_URL to use
# a Redis instead of the embedded store.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh

echo "serve: building agent-host and the example plugins" >&2
cargo build -q -p agent-host
cargo build -q --release --target wasm32-wasip2 --target-dir target/wasm-plugins \
  -p chat-memory -p notes

# The tokens come from the environment (secret_env in the config).
export AGENT_HOST_TOKEN_A="${AGENT_HOST_TOKEN_A:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export AGENT_HOST_TOKEN_B="${AGENT_HOST_TOKEN_B:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
out=$(mktemp)
./target/debug/agent-host serve --config examples/agent-host.toml --listen 127.0.0.1:0 >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 300); do
  grep -q '^listening on ' "$out" && break
  kill -0 "$pid" 2>/dev/null || { echo "serve: agent-host exited" >&2; exit 1; }
  sleep 0.1
done
base=$(sed -n 's/^listening on //p' "$out")
[ -n "$base" ] || { echo "serve: agent-host did not start" >&2; exit 1; }

show() { echo "\$ $*" | sed "s/$AGENT_HOST_TOKEN_A/\$AGENT_HOST_TOKEN_A/; s/$AGENT_HOST_TOKEN_B/\$AGENT_HOST_TOKEN_B/"; "$@"; echo; }
auth_a=(-H "Authorization: Bearer $AGENT_HOST_TOKEN_A")
show curl -sS "${auth_a[@]}" --data-binary 'Hi! I am learning sourdough baking.' "$base/v1/plugins/chat/sessions/alice/turns"
show curl -sS "${auth_a[@]}" --data-binary 'Which flour for sourdough?' "$base/v1/plugins/chat/sessions/alice/turns"
show curl -sS "${auth_a[@]}" "$base/v1/plugins/chat/sessions/alice"
show curl -sS "${auth_a[@]}" "$base/v1/plugins/chat/sessions"
show curl -sS -H "Authorization: Bearer $AGENT_HOST_TOKEN_B" "$base/v1/plugins/chat/sessions/alice"
show curl -sS "$base/healthz"
echo "\$ curl -sS $base/metrics | grep turns_total"
curl -sS "$base/metrics" | grep turns_total
kill -TERM "$pid"
wait "$pid"
echo "serve: stopped cleanly" >&2
