#!/usr/bin/env bash
# Installs the JavaScript SDK's pinned toolchain (its package.json dependencies:
# componentize-js and rolldown) into target/js-tools when missing, nothing global,
# and links the SDK there as node_modules/agent-sdk: the layout of an installed
# package, so build.sh runs the package's own build (bin/agent-sdk-build.js).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools="$root/target/js-tools"
want=$(node -p "Object.entries(require('$root/guest-sdk/js/package.json').dependencies).map(([n, v]) => n + '@' + v).join(' ')")
if [ "$(cat "$tools/.installed" 2>/dev/null)" != "$want" ]; then
  echo "install.sh: installing $want into $tools" >&2
  mkdir -p "$tools"
  (cd "$tools" && [ -f package.json ] || echo '{"private": true}' > package.json)
  # shellcheck disable=SC2086 # one argument per package
  (cd "$tools" && npm install --silent --no-audit --no-fund $want >/dev/null)
  echo "$want" > "$tools/.installed"
fi
ln -sfn "$root/guest-sdk/js" "$tools/node_modules/agent-sdk"
