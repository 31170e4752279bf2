#!/usr/bin/env bash
# Installs the Python SDK's pinned componentize-py (its pyproject.toml dependency)
# into target/python-venv (when missing), for build.sh. Outside this repository,
# `pip install` of the package brings it instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/python-venv"
version=$(sed -n 's/^dependencies = \["componentize-py==\([0-9.]*\)"\]$/\1/p' "$root/guest-sdk/python/pyproject.toml")
if [ -z "$version" ]; then
  echo "install.sh: no componentize-py==VERSION dependency in guest-sdk/python/pyproject.toml" >&2
  exit 1
fi
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $version"; then
  echo "install.sh: installing componentize-py $version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
