"""Builds a Python agent plugin into a WebAssembly component.

    agent-sdk-build APP_DIR MODULE OUT.wasm
    python -m agent_sdk_build APP_DIR MODULE OUT.wasm

It runs componentize-py (this package's pinned dependency) on the world
`agent:state/agent-plugin-http` of the WIT packaged here (`wit/`), with the SDK
(`agent_sdk`, installed next to this package) and APP_DIR on the plugin's Python
path. It runs from any directory and writes nothing into APP_DIR: both are built
from a copy, since the interpreter that imports them writes `__pycache__`.

componentize-py imports MODULE while it builds, so a syntax error, or an exception
raised at import time, fails the build: it is printed as one line, FILE:LINE: ERROR,
naming the author's file (componentize-py's own report, a Python traceback inside a
Rust backtrace, is left out). Exit status 1; 2 for a usage error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

__all__ = ["build", "main"]

WORLD = "agent-plugin-http"
WIT = Path(__file__).resolve().parent / "wit"
# The SDK a plugin imports: the package installed with this one.
SDK = Path(__file__).resolve().parent.parent / "agent_sdk"

# Not part of a plugin's sources: build output, environments, caches.
_SKIPPED = shutil.ignore_patterns(
    ".*", "__pycache__", "target", "node_modules", "venv", "*.wasm", "*.pyc"
)


class BuildError(Exception):
    """A failed build, said in one line (or what the toolchain said)."""


def build(app_dir: str, module: str, out: str) -> None:
    """Builds MODULE of APP_DIR into the component OUT; raises BuildError."""
    app = Path(app_dir)
    if not app.is_dir():
        raise BuildError(f"{app_dir}: not a directory")
    if not SDK.is_dir() or not WIT.is_dir():
        raise BuildError(f"agent_sdk or its WIT is missing next to {Path(__file__).parent}")
    out_path = Path(out).resolve()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="agent-sdk-build-") as work:
        sdk_copy = Path(work, "sdk")
        shutil.copytree(SDK, sdk_copy / "agent_sdk", ignore=_SKIPPED)
        app_copy = Path(work, "app")
        shutil.copytree(app, app_copy, ignore=_SKIPPED)
        # The paths are mounted as /0 (the SDK) and /1 (the app) inside the build.
        command = [
            sys.executable,
            "-c",
            "import sys; from componentize_py import script; "
            "sys.argv[0] = 'componentize-py'; sys.exit(script())",
            "--quiet",
            "-d",
            str(WIT),
            "-w",
            WORLD,
            "componentize",
            "-p",
            str(sdk_copy),
            "-p",
            str(app_copy),
            module,
            "-o",
            str(out_path),
        ]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            text = done.stderr.decode("utf-8", errors="replace")
            raise BuildError(explain(text, {"0": str(SDK.parent), "1": app_dir.rstrip("/")}))


def explain(text: str, mounts: dict) -> str:
    """componentize-py's failure as FILE:LINE: ERROR, or what it said."""
    if "No module named 'componentize_py'" in text:
        return "componentize-py is not installed: pip install componentize-py==0.25.1"
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
        return f"{os.path.normpath(os.path.join(mounts[mount], path))}:{line}: {error}"
    if error:
        return f"agent-sdk-build: {error}"
    # Not a Python error: what componentize-py said, without the backtrace.
    return text.split("\nStack backtrace:")[0].strip()


def main(argv: Optional[List[str]] = None) -> int:
    """The command line: APP_DIR MODULE OUT.wasm."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or any(a.startswith("-") for a in args):
        print("usage: agent-sdk-build APP_DIR MODULE OUT.wasm", file=sys.stderr)
        return 2
    app_dir, module, out = args
    try:
        build(app_dir, module, out)
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"agent-sdk-build: built {out}", file=sys.stderr)
    return 0
