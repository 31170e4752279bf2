#!/usr/bin/env bash
# Installs the pinned componentize-py into target/python-venv (when missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/python-venv"
version="0.25.1"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $version"; then
  echo "install.sh: installing componentize-py $version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
fi
