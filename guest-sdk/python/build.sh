#!/usr/bin/env bash
# Builds a Python agent plugin into a component:
#   guest-sdk/python/build.sh APP_DIR MODULE OUT.wasm
# e.g. guest-sdk/python/build.sh examples/py-chat app target/py_chat.wasm
# Installs the pinned componentize-py into target/python-venv when it is missing
# (install.sh; nothing global), then builds the world agent:state/agent-plugin-http
# with the SDK (guest-sdk/python) and APP_DIR on the Python path.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 APP_DIR MODULE OUT.wasm" >&2
  exit 2
fi
app_dir=$(cd "$1" && pwd)
module=$2
out=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/guest-sdk/python/install.sh"
out=$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd)/$(basename "$out")
# Built from a copy: componentize-py's interpreter writes __pycache__ next to what
# it imports, which must not land in the source tree.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/guest-sdk/python" "$work/sdk"
cp -r "$app_dir" "$work/app"
"$root/target/python-venv/bin/componentize-py" --quiet -d "$root/wit" -w agent-plugin-http componentize \
  -p "$work/sdk" -p "$work/app" "$module" -o "$out"
echo "build.sh: built $out" >&2
