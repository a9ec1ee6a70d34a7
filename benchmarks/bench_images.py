"""Real image builds on the project's dockerd: first build vs rebuild, and the runtime layer's size.

Targets: rebuilding an unchanged environment takes < 0.05 of its first build; the runtime layer
(flyte_infra's dependencies and sources) adds < 5 MB to the base. The layer is reported twice: on
disk (uncompressed, as `docker history` counts it) and as pushed (gzip, what the registry stores and a
node pulls), read from the image's manifest and config in the local registry. The target is read as
pushed: it sits among the speed targets, and a push and a pull move those bytes. On disk it cannot
go below 5 MB while workers import pydantic-v2 models: pydantic-core's compiled module alone is 5.0 MB.

    python benchmarks/bench_images.py      (starts dockerd and the registry with scripts/services.sh)
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from flyte_infra.artifacts.dockerfile import RUNTIME_REQUIREMENTS, image_spec
from flyte_infra.docker.build import build_image
from flyte_infra.loader import load_program

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from flyte_infra.devbox.cli import start_docker_services  # noqa: E402
from tests.images import docker, stack_for  # noqa: E402


def layer_sizes(image: str) -> list[tuple[int, str]]:
    history = docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", image)
    rows = [line.split("\t", 1) for line in history.stdout.splitlines()]
    return [(int(size), created_by) for size, created_by in rows]


def _registry_json(url: str, accept: str) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        document: dict[str, object] = json.load(response)
        return document


def pushed_layer_sizes(digest_ref: str) -> list[tuple[int, str]]:
    """(compressed size, created by) of each layer of an image pushed to a registry on loopback.

    The config's history has one entry per instruction; those that are not `empty_layer` line up,
    in order, with the manifest's layers.
    """
    name, digest = digest_ref.split("@")
    registry, repository = name.rsplit(":", 1)[0].split("/", 1)
    base = f"http://{registry}/v2/{repository}"
    manifest = _registry_json(
        f"{base}/manifests/{digest}", "application/vnd.docker.distribution.manifest.v2+json"
    )
    config_digest = manifest["config"]["digest"]  # type: ignore[index]
    config = _registry_json(f"{base}/blobs/{config_digest}", "application/json")
    steps = [step.get("created_by", "") for step in config["history"] if not step.get("empty_layer")]  # type: ignore[attr-defined]
    sizes = [layer["size"] for layer in manifest["layers"]]  # type: ignore[attr-defined]
    return list(zip(sizes, steps, strict=True))


RUNTIME_INSTALL = " ".join(shlex.quote(requirement) for requirement in RUNTIME_REQUIREMENTS)


def is_runtime(created_by: str) -> bool:
    """The layers flyte_infra adds to every image: its pip requirements and its runtime sources.

    The packages layer names the runtime's requirements too, before the packages, so the runtime's
    own layer is the one whose command ends with them (BuildKit appends ` # buildkit`).
    """
    command = created_by.strip().removesuffix("# buildkit").rstrip()
    return "runtime/" in created_by or command.endswith(RUNTIME_INSTALL)


def main() -> None:
    services = start_docker_services()
    program = load_program(str(ROOT / "examples" / "ml_pipeline.py"))
    settings = stack_for(program, services["FLYTE_INFRA_BASE_IMAGE"])
    spec = image_spec(program.environment("train"), program, settings)
    workdir = Path(tempfile.mkdtemp())

    start = time.perf_counter()
    image = build_image(spec, settings, workdir, push=False, no_cache=True)  # cold: every layer built
    first = time.perf_counter() - start
    start = time.perf_counter()
    build_image(spec, settings, workdir, push=False)
    rebuild = time.perf_counter() - start
    ratio = rebuild / first
    print(f"first build {first:.1f} s, rebuild unchanged {rebuild:.2f} s, ratio {ratio:.3f} (target < 0.05)")

    on_disk = [(size, created_by) for size, created_by in layer_sizes(image) if is_runtime(created_by)]
    pushed = [
        (size, step)
        for size, step in pushed_layer_sizes(build_image(spec, settings, workdir))
        if is_runtime(step)
    ]
    for (size, created_by), (compressed, _) in zip(on_disk, reversed(pushed), strict=True):
        print(f"  {size / 1e6:6.2f} MB on disk, {compressed / 1e6:6.2f} MB pushed  {created_by[:80]}")
    disk_total = sum(size for size, _ in on_disk)
    pushed_total = sum(size for size, _ in pushed)
    print(
        f"runtime layer adds {disk_total / 1e6:.2f} MB on disk, {pushed_total / 1e6:.2f} MB as pushed "
        "(target < 5 MB as pushed: what a push uploads and a node pulls)"
    )


if __name__ == "__main__":
    main()
