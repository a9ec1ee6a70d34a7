"""Real image builds on the project's dockerd: first build vs rebuild, and the runtime layer's size.

Targets: rebuilding an unchanged environment takes < 0.05 of its first build; the runtime layer
(flyte_infra's dependencies and sources) adds < 5 MB to the base.

    python benchmarks/bench_images.py      (starts dockerd and the registry with scripts/services.sh)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from flyte_infra.build import build_image
from flyte_infra.dockerfile import RUNTIME_REQUIREMENTS, image_spec
from flyte_infra.loader import load_program

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from tests.images import docker, stack_for  # noqa: E402
from tests.services import require_docker_services  # noqa: E402


def layer_sizes(image: str) -> list[tuple[int, str]]:
    history = docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", image)
    rows = [line.split("\t", 1) for line in history.stdout.splitlines()]
    return [(int(size), created_by) for size, created_by in rows]


def main() -> None:
    services = require_docker_services()
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

    runtime = [
        (size, created_by)
        for size, created_by in layer_sizes(image)
        if "runtime/" in created_by or all(req.split(">")[0] in created_by for req in RUNTIME_REQUIREMENTS)
    ]
    total = sum(size for size, _ in runtime)
    for size, created_by in runtime:
        print(f"  {size / 1e6:6.2f} MB  {created_by[:100]}")
    print(f"runtime layer adds {total / 1e6:.2f} MB to the base (target < 5 MB)")


if __name__ == "__main__":
    main()
