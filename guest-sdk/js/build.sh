#!/usr/bin/env bash
# Builds a JavaScript agent plugin into a component:
#   guest-sdk/js/build.sh APP.js OUT.wasm
# Installs the pinned componentize-js (and rolldown, to bundle the app with
# agent-sdk) into target/js-tools when missing (nothing global), bundles APP.js
# with guest-sdk/js (WIT imports left external), and builds the world
# agent:state/agent-plugin-http (`fetch` is wasi:http; the env is wasi:cli).
#
# A syntax error in APP.js fails the build with one line, APP.js:LINE:COLUMN:
# SyntaxError: ..., found by node's own parser before anything else runs. Other
# failures print what the bundler or componentize-js said, without their stacks.
# Exit status 1.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 APP.js OUT.wasm" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
app=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$(mkdir -p "$(dirname "$2")" && cd "$(dirname "$2")" && pwd)/$(basename "$2")
tools="$root/target/js-tools"
if ! command -v node >/dev/null; then
  echo "build.sh: node is needed (and npm, for componentize-js): install Node.js 20 or later" >&2
  exit 1
fi
"$root/guest-sdk/js/install.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Without the node stack frames ("    at ...") and node's own footer.
without_stacks() {
  grep -v -e '^    at ' -e '^Node\.js v' "$1" >&2 || true
}

# The syntax, as an ES module: node prints "[stdin]:LINE", the line, a caret
# under the column, then "SyntaxError: ...".
if ! node --input-type=module --check <"$app" >/dev/null 2>"$work/check.log"; then
  line=$(sed -n '1s/^\[stdin\]:\([0-9][0-9]*\)$/\1/p' "$work/check.log")
  column=$(awk '/^ *\^/ { print index($0, "^"); exit }' "$work/check.log")
  error=$(grep -m1 -E '^[A-Za-z]*Error: ' "$work/check.log" || true)
  if [ -n "$line" ] && [ -n "$error" ]; then
    echo "$1:$line${column:+:$column}: $error" >&2
  else
    without_stacks "$work/check.log"
  fi
  exit 1
fi

# The SDK resolves as the package `agent-sdk`.
mkdir -p "$work/node_modules"
ln -s "$root/guest-sdk/js" "$work/node_modules/agent-sdk"
cp "$app" "$work/app.js"
# WIT imports (agent:..., wasi:...) stay imports: rolldown leaves what it cannot
# resolve external, with a warning per import, shown only if bundling fails.
if ! (cd "$work" && "$tools/node_modules/.bin/rolldown" app.js --format esm \
  --file bundle.js >"$work/rolldown.log" 2>&1); then
  without_stacks "$work/rolldown.log"
  exit 1
fi
# componentize-js reads the WIT through a WASI sandbox: give it paths under one dir.
# It runs the app's top-level code, so an exception there fails the build (its
# place is in bundle.js, the app bundled with the SDK).
cp -r "$root/wit" "$work/wit"
if ! (cd "$work" && "$tools/node_modules/.bin/componentize-js" bundle.js --wit wit \
  --world-name agent-plugin-http -o "$out" >/dev/null 2>"$work/componentize.log"); then
  # From node's report of the error on: its first lines quote componentize-js.
  sed -n '/^Error: /,$p' "$work/componentize.log" >"$work/error.log"
  if [ -s "$work/error.log" ]; then
    without_stacks "$work/error.log"
  else
    without_stacks "$work/componentize.log"
  fi
  exit 1
fi
echo "build.sh: built $2" >&2
