"""Loading Flyte 2 style modules in tests: each under a unique module name."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from flyte_infra.loader import Program, load_program

MODULES = Path(__file__).parent / "modules"
ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count()


def load_source(tmp_path: Path, source: str) -> Program:
    """Write `source` as a uniquely named module and load it as the CLI does."""
    path = tmp_path / f"flyte2_mod_{os.getpid()}_{next(_counter)}.py"
    path.write_text(textwrap.dedent(source))
    return load_program(str(path))


def cli(
    *args: str, cwd: Path | None = None, pythonpath: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`flyte-infra ARGS` in a subprocess, with this worktree first on PYTHONPATH."""
    environment = {**os.environ, "PYTHONPATH": pythonpath or str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "flyte_infra.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
    )
