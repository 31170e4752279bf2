#!/usr/bin/env bash
# Installs the pinned JavaScript toolchain into target/js-tools (when missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools="$root/target/js-tools"
want="componentize-js@0.23.0 rolldown@1.3.2"
if [ "$(cat "$tools/.installed" 2>/dev/null)" != "$want" ]; then
  echo "install.sh: installing $want into $tools" >&2
  mkdir -p "$tools"
  (cd "$tools" && [ -f package.json ] || echo '{"private": true}' > package.json)
  (cd "$tools" && npm install --silent --no-audit --no-fund \
    @bytecodealliance/componentize-js@0.23.0 rolldown@1.3.2 >/dev/null)
  echo "$want" > "$tools/.installed"
fi
