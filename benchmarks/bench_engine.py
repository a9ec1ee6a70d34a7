"""The Pulumi engine's cost as the number of environments grows: preview and up of 10 and 100.

Each generated program has N environments in 5 waves (every environment of wave w > 0 depends on
one of wave w - 1), all with the same packages, so one image is built and shared. The stack renders
its Kubernetes objects to a directory (no cluster). Target: up(100) / up(10) <= 5, since the engine
deploys a wave's environments in parallel. Also reported: a no-change up, and an up that saves the
state once at the end (`--skip-checkpoints`): by default the engine rewrites the whole state file
after every step, which grows with the square of the resources and dominates at 100 environments.

    python benchmarks/bench_engine.py [--sizes 10 100]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flyte_infra.devbox.cli import start_docker_services  # noqa: E402
from flyte_infra.devbox.toolchain import ensure_toolchain  # noqa: E402
from flyte_infra.pulumi.automation import preview, up  # noqa: E402

WAVES = 5
TARGET = 5.0


def program_text(size: int) -> str:
    lines = ["import flyte_infra as flyte", ""]
    per_wave = max(1, size // WAVES)
    for index in range(size):
        wave = min(index // per_wave, WAVES - 1)
        depends = f", depends_on=[env{index - per_wave}]" if wave > 0 else ""
        lines.append(
            f'env{index} = flyte.TaskEnvironment(name="env-{index}", packages=["six>=1.16"]{depends})'
        )
    return "\n".join(lines) + "\n"


def project(size: int, base_image: str, root: Path) -> Path:
    folder = root / f"n{size}"
    folder.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, folder / name)
    (folder / "generated.py").write_text(program_text(size))
    (folder / "stacks").mkdir()
    config = {
        "flyte-infra:module": "generated.py",
        "flyte-infra:namespace": "bench",
        "flyte-infra:registry": os.environ["FLYTE_INFRA_REGISTRY"],
        "flyte-infra:baseImages": {"python:3.11-slim-bookworm": base_image},
        "flyte-infra:renderDir": "rendered",
    }
    (folder / "stacks" / "Pulumi.bench.yaml").write_text(yaml.safe_dump({"config": config}))
    return folder


def timed(action: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs=2, default=[10, 100], metavar=("SMALL", "LARGE"))
    args = parser.parse_args()
    services = start_docker_services()
    toolchain = ensure_toolchain()
    os.environ.update(toolchain.environment())
    os.environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "bench")
    root = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    results: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        folder = project(size, services["FLYTE_INFRA_BASE_IMAGE"], root)
        os.environ["PULUMI_BACKEND_URL"] = (folder / "state").as_uri()
        os.chdir(folder)
        quiet = io.StringIO()
        results[size] = {"preview": timed(preview, "bench", folder, quiet)}
        results[size]["up"] = timed(up, "bench", folder, quiet)
        results[size]["no-change up"] = timed(up, "bench", folder, quiet)
        # the same program again on a fresh stack, the state saved once at the end
        os.environ["PULUMI_BACKEND_URL"] = (folder / "state-fast").as_uri()
        results[size]["up, skip checkpoints"] = timed(
            partial(up, skip_checkpoints=True), "bench", folder, quiet
        )
        print(
            f"{size:>4} environments: "
            + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in results[size].items())
        )
    small, large = args.sizes
    for what in ("up", "up, skip checkpoints"):
        ratio = results[large][what] / results[small][what]
        verdict = "meets" if ratio <= TARGET else "misses"
        print(f"{what}: {large} / {small} environments = {ratio:.2f} ({verdict} the target <= {TARGET})")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
