#!/usr/bin/env bash
# Copies the root wit/ (the one to edit) into every package that carries it:
# the crates agent-host and agent-sdk, the Python and the JavaScript SDK. Each
# package must build from its own files once packaged (a `.crate`, a wheel, an
# npm tarball), so it cannot read ../wit. tests/tests/packaging.rs checks that the
# copies are identical to wit/.
set -euo pipefail
cd "$(dirname "$0")/.."
for copy in host/wit guest-sdk/wit guest-sdk/python/agent_sdk_build/wit guest-sdk/js/wit; do
  rm -rf "$copy"
  cp -r wit "$copy"
done
echo "sync-wit.sh: copied wit/ into the four packages" >&2
