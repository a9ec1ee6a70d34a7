"""Virtual environments of the other CPython versions the project supports, for its fast tests.

The tests run on the devbox's interpreter. `requires-python` admits every CPython from 3.11, and
preflight reads bytecode, whose shape changes between versions, so the fast tests run again on
each other CPython 3.x this machine has (pyenv's or the system's `python3.X`). Each gets a venv in
`~/.cache/flyte-infra/venvs/`, with the project's `dev` dependencies installed from the index once
(again when pyproject.toml's dependencies change), and a `.pth` file that puts the checkout on its
path, so it always tests the checkout it is called from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from ..errors import ServiceError
from .layout import Layout

__all__ = ["OLDEST", "other_interpreters", "venv_python"]

OLDEST = (3, 11)
"""The oldest CPython `requires-python` admits."""

_NEWEST_MINOR = 20  # python3.11 .. python3.20 are looked for
_DESCRIBE = "import sys, platform; print(sys.executable, sys.implementation.name, platform.python_version())"


def other_interpreters() -> dict[str, Path]:
    """Each CPython 3.x from OLDEST other than the running one, by version ("3.13.0"): pyenv's
    newest 3.x, else `python3.X` on PATH (a pyenv shim of a version pyenv does not select fails to
    run, and is passed over)."""
    found: dict[str, Path] = {}
    for minor in range(OLDEST[1], _NEWEST_MINOR + 1):
        if minor == sys.version_info.minor:
            continue
        for command in _candidates(minor):
            described = _describe(command)
            if described is not None and described[1] == "cpython" and described[2].startswith(f"3.{minor}."):
                found[described[2]] = Path(described[0])
                break
    return found


def _candidates(minor: int) -> list[str]:
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    installed = sorted(
        pyenv.glob(f"3.{minor}.*/bin/python3.{minor}"),
        key=lambda path: [int(part) if part.isdigit() else -1 for part in path.parts[-3].split(".")],
        reverse=True,
    )
    on_path = shutil.which(f"python3.{minor}")
    return [*map(str, installed), *([on_path] if on_path else [])]


def _describe(command: str) -> tuple[str, str, str] | None:
    """(sys.executable, implementation, version) of `command`, or None when it does not run."""
    try:
        completed = subprocess.run(
            [command, "-c", _DESCRIBE], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    executable, implementation, version = completed.stdout.split()
    return executable, implementation, version


def venv_python(interpreter: Path, version: str, project: Path, layout: Layout) -> Path:
    """The python of `interpreter`'s venv, with the project's `dev` dependencies and `project` on
    its path; created or refreshed as needed."""
    venv = layout.cache / "venvs" / f"cpython-{version}"
    python = venv / "bin" / "python"
    requirements = _dev_requirements(project / "pyproject.toml")
    stamp = hashlib.sha256(json.dumps([version, requirements]).encode()).hexdigest()
    stamp_file = venv / ".flyte-infra-stamp"
    if not python.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp:
        log = layout.cache / "venvs" / f"cpython-{version}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        commands = [[str(interpreter), "-m", "venv", "--clear", str(venv)]]
        if requirements:
            commands.append(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements]
            )
        with log.open("w") as output:
            for command in commands:
                if subprocess.run(command, stdout=output, stderr=subprocess.STDOUT).returncode != 0:
                    raise ServiceError(f"CPython {version}", f"`{' '.join(command[1:4])}` failed", log=log)
        stamp_file.write_text(stamp)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "flyte-infra-checkout.pth").write_text(f"{project.resolve()}\n")
    return python


def _dev_requirements(pyproject: Path) -> list[str]:
    """The project's dependencies and its `dev` extra, self-references (`flyte-infra[a,b]`) expanded."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    own = re.compile(rf"^{re.escape(project['name'])}\[(?P<extras>[^\]]+)\]$")
    requirements: list[str] = list(project.get("dependencies", []))
    pending, seen = ["dev"], set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in extras.get(extra, []):
            match = own.match(requirement.replace(" ", ""))
            if match:
                pending.extend(name.strip() for name in match["extras"].split(","))
            else:
                requirements.append(requirement)
    return requirements
