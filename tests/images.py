"""Build and run the project's real images on the project's dockerd (tests and benchmarks)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from flyte_infra.artifacts.dockerfile import image_spec
from flyte_infra.deploy.settings import StackSettings
from flyte_infra.docker.build import build_image
from flyte_infra.loader import Program
from flyte_infra.packaging.resolve import program_lock
from flyte_infra.packaging.wheels import write_wheels


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def stack_for(program: Program, base_image: str) -> StackSettings:
    """A stack whose environments build FROM the local debootstrap base."""
    return StackSettings.from_config(
        {"module": program.module_name, "baseImages": {"python:3.11-slim-bookworm": base_image}}, stack="test"
    )


def build_all(program: Program, settings: StackSettings, workdir: Path) -> dict[str, str]:
    """Image name of every environment, built (not pushed) as the Pulumi component would; identical
    specs are built once. Unlike `flyte_infra.docker.build.build_images`, no preflight: tests build broken
    programs on purpose."""
    built: dict[str, str] = {}
    names = {}
    lock = program_lock(program, write=False)
    for environment in program.environments:
        spec = image_spec(environment, program, settings, lock)
        if spec.tag not in built:
            built[spec.tag] = build_image(spec, settings, workdir, push=False)
        names[environment.name] = built[spec.tag]
    return names
