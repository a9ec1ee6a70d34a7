"""`flyte-infra build`: build and push every environment's image with the docker CLI, by digest.

The same Dockerfiles and contexts as the Pulumi component; for pipelines that deploy with
`flyte-infra render --images` (GitOps) instead of the Pulumi engine. Identical specs build once.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .dockerfile import ImageSpec, image_spec, write_build_context
from .errors import FlyteInfraError
from .loader import Program
from .preflight import preflight
from .settings import StackSettings

__all__ = ["build_image", "build_images"]


_ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|\][^\x07\x1b]*(?:\x07|\x1b\\))")
"""Terminal control sequences (pip colours its errors; some tools add links) that would garble a
one-line message: CSI sequences such as colours, and OSC sequences such as hyperlinks."""


def _docker(*args: str, timeout: float = 1800) -> str:
    try:
        completed = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise FlyteInfraError("the docker CLI is not installed") from None
    if completed.returncode != 0:
        summary = _failure_summary(completed.stdout, completed.stderr)
        raise FlyteInfraError(f"docker {args[0]} failed: {summary}")
    return completed.stdout.strip()


def _failure_summary(stdout: str, stderr: str) -> str:
    """The `ERROR` lines a build step printed (pip's, say), wherever the daemon streamed them, and
    docker's own last words, on one line."""
    errors = [line for line in _plain_lines(stdout + "\n" + stderr) if line.startswith("ERROR")][-3:]
    return " | ".join(dict.fromkeys(errors + _plain_lines(stderr)[-3:]))


def _plain_lines(text: str) -> list[str]:
    return [line.strip() for line in _ANSI_ESCAPE.sub("", text).splitlines() if line.strip()]


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
    """Image reference of every environment (by digest when pushed).

    Preflight runs first, then every base image is found or pulled, so a missing one stops the
    build before any image is built.
    """
    graph = preflight(program.environments).raise_for_errors()
    _require_daemon()
    specs = {name: image_spec(graph.environments[name], program, settings) for name in graph.order}
    first_user: dict[str, str] = {}  # base image -> the first environment built FROM it
    for name, spec in specs.items():
        first_user.setdefault(spec.base_image, name)
    for base_image, name in first_user.items():
        _require_base_image(base_image, name)
    by_tag: dict[str, str] = {}
    references = {}
    for name, spec in specs.items():
        if spec.tag not in by_tag:
            by_tag[spec.tag] = build_image(spec, settings, workdir, push=push)
        references[name] = by_tag[spec.tag]
    return references


def _require_base_image(base_image: str, environment: str) -> None:
    """`base_image` in the daemon's store, pulled if need be; else an error naming `environment`."""
    try:
        _docker("image", "inspect", "--format", "{{.Id}}", base_image, timeout=60)
        return
    except FlyteInfraError:
        pass
    try:
        _docker("pull", "--quiet", base_image)
    except FlyteInfraError as error:
        raise FlyteInfraError(
            f"TaskEnvironment '{environment}': image: cannot get '{base_image}' ({error}); build FROM an "
            "image the daemon has or can pull, or map it to a mirror with flyte-infra:baseImages"
        ) from None
