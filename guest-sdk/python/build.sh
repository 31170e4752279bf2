#!/usr/bin/env bash
# Builds a Python agent plugin from this repository into a component:
#   guest-sdk/python/build.sh APP_DIR MODULE OUT.wasm
# e.g. guest-sdk/python/build.sh examples/py-chat app target/py_chat.wasm
# It runs the package's own build, agent_sdk_build (what `agent-sdk-build` is once
# the package is installed), from the sources here, with the pinned
# componentize-py that install.sh puts into target/python-venv (nothing global).
#
# A syntax error, or an exception raised while the module is imported at build
# time, is printed as one line, FILE:LINE: ERROR, naming the author's file. Exit
# status 1.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 APP_DIR MODULE OUT.wasm" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/guest-sdk/python/install.sh"
PYTHONPATH="$root/guest-sdk/python" PYTHONDONTWRITEBYTECODE=1 \
  exec "$root/target/python-venv/bin/python" -m agent_sdk_build "$1" "$2" "$3"
