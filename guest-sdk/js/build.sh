#!/usr/bin/env bash
# Builds a JavaScript agent plugin from this repository:
#   guest-sdk/js/build.sh APP.js OUT.wasm
# It runs the package's own build, bin/agent-sdk-build.js (what `agent-sdk-build`
# is once the package is installed), with the pinned toolchain that install.sh
# puts into target/js-tools (nothing global). That bundles APP.js with what it
# imports and this SDK, and builds the world agent:state/agent-plugin-http.
#
# A syntax error prints one line, APP.js:LINE:COLUMN: SyntaxError: ..., and other
# failures what the bundler or componentize-js said, without their stacks. Exit
# status 1.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 APP.js OUT.wasm" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v node >/dev/null; then
  echo "build.sh: node is needed (and npm, for componentize-js): install Node.js 20 or later" >&2
  exit 1
fi
"$root/guest-sdk/js/install.sh"
# Through the link in target/js-tools/node_modules, so the build finds the
# toolchain next to it as an installed package would.
exec node --preserve-symlinks --preserve-symlinks-main \
  "$root/target/js-tools/node_modules/agent-sdk/bin/agent-sdk-build.js" "$1" "$2"
