#!/usr/bin/env bash
# Builds a Python agent plugin into a component:
#   guest-sdk/python/build.sh APP_DIR MODULE OUT.wasm
# e.g. guest-sdk/python/build.sh examples/py-chat app target/py_chat.wasm
# Installs the pinned componentize-py into target/python-venv when it is missing
# (install.sh; nothing global), then builds the world agent:state/agent-plugin-http
# with the SDK (guest-sdk/python) and APP_DIR on the Python path.
#
# componentize-py imports MODULE while it builds, so a syntax error, or an
# exception raised at import time, fails the build: it is printed as one line,
# FILE:LINE: ERROR, naming the author's file (componentize-py's own report, a
# Python traceback inside a Rust backtrace, is left out). Exit status 1.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 APP_DIR MODULE OUT.wasm" >&2
  exit 2
fi
app_arg=${1%/}
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
python="$root/target/python-venv/bin/python"
# The paths are mounted as /0 (the SDK) and /1 (the app) inside the build.
if ! "$root/target/python-venv/bin/componentize-py" --quiet -d "$root/wit" \
  -w agent-plugin-http componentize -p "$work/sdk" -p "$work/app" "$module" \
  -o "$out" 2>"$work/stderr"; then
  "$python" - "$work/stderr" "$root/guest-sdk/python" "$app_arg" <<'EOF' >&2
"""Prints componentize-py's failure as FILE:LINE: ERROR, or what it said."""
import re
import sys

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
mounts = {"0": sys.argv[2], "1": sys.argv[3]}
# The error is the last line of "Caused by:" (anyhow's chain), before the Rust
# backtrace; a SyntaxError ends with "(app.py, line 7)", said again below.
error = None
caused = re.search(r"^Caused by:\n((?:[ \t]+\S.*\n?)+)", text, re.M)
if caused:
    error = caused.group(1).strip().splitlines()[-1].strip()
    error = re.sub(r"^\d+: ", "", error)
    error = re.sub(r" \([^()]*, line \d+\)$", "", error)
# Where: the innermost frame of the Python traceback in the app or the SDK.
frames = re.findall(r'File "/([01])/([^"]+)", line (\d+)', text)
if error and frames:
    mount, path, line = frames[-1]
    print(f"{mounts[mount]}/{path}:{line}: {error}")
elif error:
    print(f"build.sh: {error}")
else:
    # Not a Python error: what componentize-py said, without the backtrace.
    print(text.split("\nStack backtrace:")[0].strip())
EOF
  exit 1
fi
echo "build.sh: built $out" >&2
