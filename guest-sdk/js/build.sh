#!/usr/bin/env bash
# Builds a JavaScript agent plugin into a component:
#   guest-sdk/js/build.sh APP.js OUT.wasm
# Installs the pinned componentize-js (and rolldown, to bundle the app with
# agent-sdk) into target/js-tools when missing (nothing global), bundles APP.js
# with guest-sdk/js (WIT imports left external), and builds the world
# agent:state/agent-plugin-http (`fetch` is wasi:http; the env is wasi:cli).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 APP.js OUT.wasm" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
app=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$(mkdir -p "$(dirname "$2")" && cd "$(dirname "$2")" && pwd)/$(basename "$2")
tools="$root/target/js-tools"
"$root/guest-sdk/js/install.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The SDK resolves as the package `agent-sdk`.
mkdir -p "$work/node_modules"
ln -s "$root/guest-sdk/js" "$work/node_modules/agent-sdk"
cp "$app" "$work/app.js"
# WIT imports (agent:..., wasi:...) stay imports: rolldown leaves what it cannot
# resolve external, with a warning per import, shown only if bundling fails.
if ! (cd "$work" && "$tools/node_modules/.bin/rolldown" app.js --format esm \
  --file bundle.js >"$work/rolldown.log" 2>&1); then
  cat "$work/rolldown.log" >&2
  exit 1
fi
# componentize-js reads the WIT through a WASI sandbox: give it paths under one dir.
cp -r "$root/wit" "$work/wit"
(cd "$work" && "$tools/node_modules/.bin/componentize-js" bundle.js --wit wit \
  --world-name agent-plugin-http -o "$out" >/dev/null)
echo "build.sh: built $2" >&2
