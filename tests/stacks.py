"""The example program and stack settings shared by the settings, Dockerfile, manifest and render tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate

from flyte_infra.deploy.graph import EnvironmentGraph, build_graph
from flyte_infra.deploy.settings import StackSettings
from flyte_infra.loader import Program, load_program

ROOT = Path(__file__).parents[1]
EXAMPLE = str(ROOT / "examples" / "ml_pipeline.py")
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes we support and the newest schema kubernetes-validate ships."""


def stack(**values: Any) -> StackSettings:
    """Settings of a stack 'dev' for the example, from camelCase config keys as in a stack file."""
    return StackSettings.from_config({"module": EXAMPLE, "namespace": "flyte-dev", **values}, stack="dev")


def example() -> tuple[Program, EnvironmentGraph]:
    program = load_program(EXAMPLE)
    return program, build_graph(program.environments)


def validate(manifest: dict[str, Any]) -> None:
    """Raise kubernetes_validate.ValidationError unless `manifest` is valid, strictly, in every version."""
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)
