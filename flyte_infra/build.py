"""`flyte-infra build`: build and push every environment's image with the docker CLI, by digest.

The same Dockerfiles and contexts as the Pulumi component; for pipelines that deploy with
`flyte-infra render --images` (GitOps) instead of the Pulumi engine. Identical specs build once.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .dockerfile import ImageSpec, image_spec, write_build_context
from .errors import FlyteInfraError
from .loader import Program
from .preflight import preflight
from .settings import StackSettings

__all__ = ["build_image", "build_images"]


def _docker(*args: str, timeout: float = 1800) -> str:
    try:
        completed = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise FlyteInfraError("the docker CLI is not installed") from None
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-5:]
        raise FlyteInfraError(f"docker {args[0]} failed: {' | '.join(tail)}")
    return completed.stdout.strip()


def _require_daemon() -> None:
    """FlyteInfraError saying how to start the project's own daemon when none answers."""
    if shutil.which("docker") is None:
        raise FlyteInfraError("the docker CLI is not installed (`scripts/services.sh up` installs it)")
    try:
        _docker("version", "--format", "{{.Server.Version}}", timeout=30)
    except FlyteInfraError:
        raise FlyteInfraError(
            "no Docker daemon answers (docker version failed); start the project's own with "
            '`scripts/services.sh up` and point the CLI at it: eval "$(scripts/services.sh env)"'
        ) from None


def build_image(
    spec: ImageSpec, settings: StackSettings, workdir: Path, *, push: bool = True, no_cache: bool = False
) -> str:
    """Build `spec` (host network) and, with `push`, push it; returns `name@sha256:...` when pushed."""
    context = write_build_context(spec, workdir / spec.tag)
    name = spec.image_name(settings)
    cache = ["--no-cache"] if no_cache else []
    _docker("build", "--network", "host", "--quiet", *cache, "--tag", name, str(context))
    if not push:
        return name
    _docker("push", "--quiet", name)
    for digest_ref in _docker(
        "image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", name
    ).split():
        if digest_ref.startswith(name.rsplit(":", 1)[0] + "@"):
            return f"{name}@{digest_ref.split('@', 1)[1]}"
    raise FlyteInfraError(f"pushed {name}, but docker reports no digest for it")


def build_images(
    program: Program, settings: StackSettings, workdir: Path, *, push: bool = True
) -> dict[str, str]:
    """Image reference of every environment (by digest when pushed); preflight runs first."""
    graph = preflight(program.environments).raise_for_errors()
    _require_daemon()
    by_tag: dict[str, str] = {}
    references = {}
    for name in graph.order:
        spec = image_spec(graph.environments[name], program, settings)
        if spec.tag not in by_tag:
            by_tag[spec.tag] = build_image(spec, settings, workdir, push=push)
        references[name] = by_tag[spec.tag]
    return references
