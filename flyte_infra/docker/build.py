"""`flyte-infra build`: build and push every environment's image with the docker CLI, by digest.

The same Dockerfiles and contexts as the Pulumi component; for pipelines that deploy with
`flyte-infra render --images` (GitOps) instead of the Pulumi engine. Identical specs build once.
Builds use BuildKit (package layers mount their wheels) with no network: `docker buildx build`,
or a docker client older than 23 with `DOCKER_BUILDKIT=1` (those have BuildKit built in).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts.dockerfile import ImageSpec, image_spec, write_build_context
from ..deploy.preflight import preflight
from ..errors import ImageBuildError
from ..packaging.lock import Lock
from ..packaging.resolve import program_lock
from ..packaging.wheels import write_wheels

if TYPE_CHECKING:
    from ..deploy.settings import StackSettings
    from ..loader import Program

__all__ = ["build_image", "build_images"]


_ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|\][^\x07\x1b]*(?:\x07|\x1b\\))")
"""Terminal control sequences (pip colours its errors; some tools add links) that would garble a
one-line message: CSI sequences such as colours, and OSC sequences such as hyperlinks."""


def _docker(
    *args: str, timeout: float = 1800, image: str | None = None, client: tuple[str, ...] = ("docker",)
) -> str:
    """docker's stdout; ImageBuildError (about `image`, if given) when it fails."""
    environment = {**os.environ, "DOCKER_BUILDKIT": "1"}
    try:
        completed = subprocess.run(
            [*client, *args], capture_output=True, text=True, timeout=timeout, env=environment
        )
    except FileNotFoundError as error:
        raise ImageBuildError("the docker CLI is not installed", image=image) from error
    if completed.returncode != 0:
        log = _failure_log(completed.stdout, completed.stderr)
        raise ImageBuildError(f"docker {args[0]} failed: {' | '.join(log)}", image=image, log=log)
    return completed.stdout.strip()


def _failure_log(stdout: str, stderr: str) -> list[str]:
    """The `ERROR` lines a build step printed (pip's, say), wherever the daemon streamed them, and
    docker's own last words."""
    errors = [line for line in _plain_lines(stdout + "\n" + stderr) if line.startswith("ERROR")][-3:]
    return list(dict.fromkeys(errors + _plain_lines(stderr)[-3:]))


def _plain_lines(text: str) -> list[str]:
    return [line.strip() for line in _ANSI_ESCAPE.sub("", text).splitlines() if line.strip()]


def _require_daemon() -> None:
    """ImageBuildError saying how to start the project's own daemon when none answers."""
    if shutil.which("docker") is None:
        raise ImageBuildError("the docker CLI is not installed (`scripts/services.sh up` installs it)")
    try:
        _docker("version", "--format", "{{.Server.Version}}", timeout=30)
    except ImageBuildError as error:
        raise ImageBuildError(
            "no Docker daemon answers (docker version failed); start the project's own with "
            '`scripts/services.sh up` and point the CLI at it: eval "$(scripts/services.sh env)"',
            log=error.log,
        ) from error


@cache
def buildkit_client() -> tuple[str, ...]:
    """The client whose `build` uses BuildKit: `docker buildx`, else a docker client that has
    BuildKit built in (< 23; Debian's docker.io 20.10 installs one as
    /usr/bin/docker); ImageBuildError if there is neither."""
    candidates = [
        path for path in (shutil.which("docker"), "/usr/bin/docker") if path and Path(path).exists()
    ]
    for path in dict.fromkeys(candidates):
        if subprocess.run([path, "buildx", "version"], capture_output=True).returncode == 0:
            return (path, "buildx")
    for path in dict.fromkeys(candidates):
        version = subprocess.run(
            [path, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True
        ).stdout.strip()
        if version and int(version.split(".")[0]) < 23:
            return (path,)
    raise ImageBuildError(
        "BuildKit is needed to build images: install docker buildx (the docker-buildx package or "
        "plugin), or a docker client older than 23 (`python -m flyte_infra.devbox up docker` installs one)"
    )


def build_image(
    spec: ImageSpec,
    settings: StackSettings,
    workdir: Path,
    *,
    push: bool = True,
    no_cache: bool = False,
    environment: str | None = None,
) -> str:
    """Build `spec` (host network) and, with `push`, push it; returns `name@sha256:...` when pushed.

    ImageBuildError names `environment` (the first one built from `spec`) when given.
    """
    context = write_build_context(spec, workdir / spec.tag)
    write_wheels(spec.layers, context)
    name = spec.image_name(settings)
    cache = ["--no-cache"] if no_cache else []
    try:
        client = buildkit_client()
        _docker(
            "build",
            "--network",
            spec.network,
            "--quiet",
            *cache,
            "--tag",
            name,
            str(context),
            image=name,
            client=client,
        )
        if not push:
            return name
        _docker("push", "--quiet", name, image=name)
        inspected = _docker(
            "image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", name, image=name
        )
    except ImageBuildError as error:
        error.environment = environment
        raise
    for digest_ref in inspected.split():
        if digest_ref.startswith(name.rsplit(":", 1)[0] + "@"):
            return f"{name}@{digest_ref.split('@', 1)[1]}"
    raise ImageBuildError(
        f"pushed {name}, but docker reports no digest for it", environment=environment, image=name
    )


def build_images(
    program: Program,
    settings: StackSettings,
    workdir: Path,
    *,
    push: bool = True,
    lock: Lock | None = None,
    no_cache: bool = False,
) -> dict[str, str]:
    """Image reference of every environment (by digest when pushed).

    Preflight runs first, then the lock is read (or resolved), then every base image is found or
    pulled, so a conflict or a missing base stops the build before any image is built.
    """
    graph = preflight(program.environments).raise_for_errors()
    lock = lock if lock is not None else program_lock(program)
    _require_daemon()
    specs = {name: image_spec(graph.environments[name], program, settings, lock) for name in graph.order}
    first_user: dict[str, str] = {}  # base image -> the first environment built FROM it
    for name, spec in specs.items():
        first_user.setdefault(spec.base_image, name)
    for base_image, name in first_user.items():
        _require_base_image(base_image, name)
    by_tag: dict[str, str] = {}
    references = {}
    for name, spec in specs.items():
        if spec.tag not in by_tag:
            by_tag[spec.tag] = build_image(
                spec, settings, workdir, push=push, no_cache=no_cache, environment=name
            )
        references[name] = by_tag[spec.tag]
    return references


def _require_base_image(base_image: str, environment: str) -> None:
    """`base_image` in the daemon's store, pulled if need be; else an error naming `environment`."""
    try:
        _docker("image", "inspect", "--format", "{{.Id}}", base_image, timeout=60)
        return
    except ImageBuildError:
        pass  # not in the store: pull it
    try:
        _docker("pull", "--quiet", base_image)
    except ImageBuildError as error:
        raise ImageBuildError(
            f"TaskEnvironment '{environment}': image: cannot get '{base_image}' ({error}); build FROM an "
            "image the daemon has or can pull, or map it to a mirror with flyte-infra:baseImages",
            environment=environment,
            image=base_image,
            log=error.log,
        ) from error
