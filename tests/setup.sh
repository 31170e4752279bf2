#!/usr/bin/env bash
# Installs what a fresh machine of this kind lacks to build and test agent-host:
# the pinned Rust toolchain's wasm32-wasip2 target, redis-server (with redis-cli),
# nginx (a reverse proxy in front of a model server, tests/tests/model_servers.rs)
# and systemd's systemd-analyze (host/tests/deploy_files.rs verifies the unit).
set -euo pipefail
cd "$(dirname "$0")/.."

# rustup reads rust-toolchain.toml here, so this installs the pinned toolchain too.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target" >&2
  rustup target add wasm32-wasip2
fi

# The serve tests send SIGTERM with kill(1) from procps (not the shell builtin).
if [ ! -x /usr/bin/kill ] && [ ! -x /bin/kill ]; then
  echo "setup: installing procps (kill)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq procps >/dev/null
fi

# Python plugins: componentize-py, pinned, in a venv under target/.
guest-sdk/python/install.sh

# JavaScript plugins: componentize-js and rolldown, pinned, under target/js-tools.
guest-sdk/js/install.sh

# The agents benchmark's Python floor (tests/servers/agent_floor.py): aiohttp and
# redis-py, pinned, in a venv under target/ (a copy of the pins in the venv says it
# is up to date).
floor_venv=target/agent-floor-venv
floor_pins=tests/servers/agent_floor.requirements.txt
if [ ! -x "$floor_venv/bin/python" ] || ! cmp -s "$floor_pins" "$floor_venv/requirements.txt"; then
  echo "setup: installing the Python floor's packages into $floor_venv" >&2
  python3 -m venv "$floor_venv"
  "$floor_venv/bin/pip" install --quiet --disable-pip-version-check -r "$floor_pins"
  cp "$floor_pins" "$floor_venv/requirements.txt"
fi

# The official MCP Python SDK, pinned, in a venv under target/ (the same check): the
# MCP server of the SDKs' MCP client tests (tests/servers/mcp_server.py) and the
# client of serve's MCP endpoint (tests/servers/mcp_client.py).
mcp_venv=target/mcp-venv
mcp_pins=tests/servers/mcp.requirements.txt
if [ ! -x "$mcp_venv/bin/python" ] || ! cmp -s "$mcp_pins" "$mcp_venv/requirements.txt"; then
  echo "setup: installing the MCP SDK into $mcp_venv" >&2
  python3 -m venv "$mcp_venv"
  "$mcp_venv/bin/pip" install --quiet --disable-pip-version-check -r "$mcp_pins"
  cp "$mcp_pins" "$mcp_venv/requirements.txt"
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "setup: installing redis-server" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

# The model-server tests put Debian's nginx in front of a model (started on a free
# port in a temp dir by the test, never as a service).
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "setup: installing nginx" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx >/dev/null
fi

# `systemd-analyze verify` checks examples/deploy/agent-host.service; only the tool
# is used, no service is started.
if ! command -v systemd-analyze >/dev/null; then
  echo "setup: installing systemd (systemd-analyze)" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq systemd >/dev/null
fi
