#!/usr/bin/env python3
"""The README's two commands, on any machine with Python >= 3.11 and nothing else.

    python3 run.py dev     # run linkplane: embedded Postgres, the AWS simulator, the server
    python3 run.py test    # run the whole test suite

It installs uv (the pinned version, into ./.tools) if the machine has none, creates the
project's virtual environment from uv.lock, and runs the command inside it. Extra arguments
are passed on: `python3 run.py dev --listen 127.0.0.1:6000`, `python3 run.py test -k watch`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
UV_VERSION = "0.13.8"
TOOLS = ROOT / ".tools"


def uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    bindir = TOOLS / ("Scripts" if os.name == "nt" else "bin")
    candidate = bindir / "uv"
    if not candidate.exists():
        print(f"installing uv {UV_VERSION} into {TOOLS} …", flush=True)
        venv.create(TOOLS, with_pip=True)
        subprocess.run(
            [str(bindir / "python"), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"],
            check=True,
        )
    return str(candidate)


WARM_IMPORTS = (
    "import linkplane.server.cli, linkplane.server.runtime, opentelemetry.sdk.trace",
    "import linkplane.sim.server, hypothesis, linkplane.client.cli, _pytest.assertion.rewrite",
)


def warm_bytecode(tool: str, env: dict[str, str]) -> None:
    """On a fresh checkout, compile what the suite imports once, in two processes at once,
    before the six workers start: otherwise each of them (and the servers they start early)
    compiles the same modules from source at the same time (13.0 s of CPU for a fresh
    worker's collection against 5.3 s once compiled). Nothing to do once the cache exists."""
    marker = ROOT / "server/src/linkplane/server/__pycache__"
    if marker.exists():
        return
    warmers = [
        subprocess.Popen([tool, "run", "--frozen", "python", "-c", code], cwd=ROOT, env=env)
        for code in WARM_IMPORTS
    ]
    for warmer in warmers:
        warmer.wait()


def main() -> int:
    if sys.version_info < (3, 11):
        print("linkplane needs Python 3.11 or newer", file=sys.stderr)
        return 2
    if len(sys.argv) < 2 or sys.argv[1] not in {"dev", "test", "serve", "lpctl"}:
        print(__doc__)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    tool = uv()
    subprocess.run([tool, "sync", "--frozen", "--quiet"], cwd=ROOT, check=True)
    env = dict(os.environ)
    if command == "test":
        # The suite starts about a hundred Python processes (pytest-xdist workers, servers,
        # reconciler workers, lpctl runs). With bytecode caching off (PYTHONDONTWRITEBYTECODE,
        # set on some machines, this project's CI among them), each compiles every module it
        # imports from source: a fifth of the suite's CPU. The first import writes the cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        warm_bytecode(tool, env)
        argv = [tool, "run", "--frozen", "pytest", *extra]
    elif command == "lpctl":
        argv = [tool, "run", "--frozen", "lpctl", *extra]
    else:
        argv = [tool, "run", "--frozen", "linkplane-server", command, *extra]
    return subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
