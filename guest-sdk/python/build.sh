#!/usr/bin/env bash
# Builds a Python agent plugin into a component:
#   guest-sdk/python/build.sh APP_DIR MODULE OUT.wasm
# e.g. guest-sdk/python/build.sh examples/py-chat app target/py_chat.wasm
# Installs the pinned componentize-py into target/python-venv when it is missing
# (nothing global), then builds the world agent:state/agent-plugin-http with the
# SDK (guest-sdk/python) and APP_DIR on the Python path.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 APP_DIR MODULE OUT.wasm" >&2
  exit 2
fi
app_dir=$(cd "$1" && pwd)
module=$2
out=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/python-venv"
version="0.25.1"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $version"; then
  echo "build.sh: installing componentize-py $version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
mkdir -p "$(dirname "$out")"
"$venv/bin/componentize-py" --quiet -d "$root/wit" -w agent-plugin-http componentize \
  -p "$root/guest-sdk/python" -p "$app_dir" "$module" -o "$out"
echo "build.sh: built $out" >&2
