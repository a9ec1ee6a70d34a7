"""The project's dockerd and registry for tests that build and run real images.

`scripts/services.sh up` installs and starts them (idempotent, fast when already up); a test that
needs them skips with the script's own reason only when they truly cannot start here.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "services.sh"


@functools.cache
def _start() -> tuple[dict[str, str], str]:
    started = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=3600)
    if started.returncode != 0:
        lines = (started.stderr or started.stdout).strip().splitlines()
        return {}, lines[-1] if lines else f"scripts/services.sh up exited {started.returncode}"
    exports = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True, check=True).stdout
    variables = {}
    for line in exports.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            variables[key] = value.strip("'\"")
    return variables, ""


def require_docker_services() -> dict[str, str]:
    """Start dockerd and the registry (once per test session) and export their variables."""
    variables, reason = _start()
    if reason:
        pytest.skip(f"docker services cannot start here: {reason}")
    os.environ.update(variables)
    return variables
