#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting and lints, then
# runs every test (unit, integration against real redis-server processes that the
# tests start themselves, CLI, doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
started=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The Python and JavaScript SDKs' own unit tests (no component, no host).
PYTHONPATH=guest-sdk/python python3 guest-sdk/python/tests/test_mcp.py
node --test guest-sdk/js/test/
cargo test "$@"
echo "tests/run.sh: done in $(( $(date +%s) - started ))s" >&2
