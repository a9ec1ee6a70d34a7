"""Build and run the project's real images on the project's dockerd (tests and benchmarks)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from flyte_infra.dockerfile import ImageSpec, image_spec, write_build_context
from flyte_infra.loader import Program
from flyte_infra.settings import StackSettings


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def stack_for(program: Program, base_image: str) -> StackSettings:
    """A stack whose environments build FROM the local debootstrap base."""
    return StackSettings.from_config(
        {"module": program.module_name, "baseImages": {"python:3.11-slim-bookworm": base_image}}, stack="test"
    )


def build(spec: ImageSpec, settings: StackSettings, workdir: Path, *extra: str) -> str:
    """Build `spec` exactly as the Pulumi component would (same Dockerfile and context); its name."""
    context = write_build_context(spec, workdir / spec.tag)
    name = spec.image_name(settings)
    completed = docker("build", "--network", "host", "-q", "-t", name, *extra, str(context), check=False)
    if completed.returncode != 0:
        raise AssertionError(f"docker build of {name} failed:\n{completed.stderr[-3000:]}")
    return name


def build_all(program: Program, settings: StackSettings, workdir: Path) -> dict[str, str]:
    """Image name of every environment; identical specs are built once."""
    built: dict[str, str] = {}
    names = {}
    for environment in program.environments:
        spec = image_spec(environment, program, settings)
        if spec.tag not in built:
            built[spec.tag] = build(spec, settings, workdir)
        names[environment.name] = built[spec.tag]
    return names
