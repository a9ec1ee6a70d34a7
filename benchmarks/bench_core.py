"""Preflight + plan of generated programs, in absolute time. Target: under 50 ms for 1,000 environments.

Each environment depends on up to three earlier ones and has one task, which calls the task of
each environment it depends on, so preflight's call analysis (a bytecode scan of every task) and
its check of the tasks' type hints are in the timed path. Its packages are two of its own
(specifiers drawn from a pool) plus, pinned, every package of the environments it depends on, so
parents cover children as preflight demands; one environment in a hundred drops an inherited
package, so findings are produced and formatted too.

Two figures per size: the first run after generating the program (requirement parses and the
tasks' JSON adapters are computed then), and the median of later runs, which is what a second
`flyte-infra check` in one process, or a deploy after a check, costs.

    python benchmarks/bench_core.py [SIZE ...]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from typing import Any

from flyte_infra import Resources, TaskEnvironment
from flyte_infra.deploy.plan import build_plan
from flyte_infra.deploy.preflight import preflight

TARGET_MS = 50.0
"""Preflight + plan of 1,000 environments with tasks."""
TARGET_SIZE = 1_000

NAMES = ("numpy", "pandas", "torch", "scikit_learn", "Requests", "pyarrow", "ray[tune]", "scipy", "attrs")
SPECIFIERS = ("", ">=1.0", "==2.1.0", "<3", "~=2.0", ">=2,<2.5")
PIN = "==2.1.0"  # satisfies every specifier above


def generate(size: int, seed: int = 7, faulty_every: int | None = 100) -> list[TaskEnvironment]:
    """`size` environments, each with a task calling its dependencies' tasks; every `faulty_every`-th
    misses an inherited package (None: none does)."""
    rng = random.Random(seed)
    namespace: dict[str, Any] = {}  # the generated tasks' module globals: calls resolve through them
    environments: list[TaskEnvironment] = []
    for index in range(size):
        depends_on = rng.sample(environments, k=min(3, index))
        inherited = {
            package.split("=")[0].split("<")[0].split(">")[0].split("~")[0]
            for dependency in depends_on
            for package in dependency.packages
        }
        if faulty_every and index % faulty_every == faulty_every - 1 and inherited:
            inherited.remove(min(inherited))  # a parent that misses a child's package: an error finding
        own = [name + rng.choice(SPECIFIERS) for name in rng.sample(NAMES, k=2) if name not in inherited]
        environment = TaskEnvironment(
            f"env-{index}",
            packages=sorted(name + PIN for name in inherited) + own,
            resources=Resources(cpu="500m", memory="1Gi", gpu="A100:1" if index % 10 == 0 else None),
            depends_on=depends_on,
        )
        calls = " + ".join(f"step_{dependency.name[4:]}(x=x)" for dependency in depends_on) or "0"
        source = f"def step_{index}(x: int) -> int:\n    return x + {calls}\n"
        exec(source, namespace)  # a task per environment, calling its dependencies' tasks by name
        namespace[f"step_{index}"] = environment.task(namespace[f"step_{index}"])
        environments.append(environment)
    return environments


def check_and_plan(environments: list[TaskEnvironment]) -> int:
    """What `flyte-infra plan` computes: preflight, then the plan of its graph; returns the errors."""
    report = preflight(environments)
    assert report.graph is not None
    build_plan(report.graph)
    return len(report.errors)


def timed(environments: list[TaskEnvironment]) -> float:
    start = time.perf_counter()
    check_and_plan(environments)
    return time.perf_counter() - start


def main(sizes: list[int], rounds: int = 21) -> int:
    columns = (("envs", 6), ("tasks", 6), ("calls", 6), ("errors", 6), ("first run", 11), ("median", 11))
    print(" ".join(f"{name:>{width}}" for name, width in columns), f"{'per env':>9}")
    verdict = 0
    for size in sizes:
        environments = generate(size)
        calls = sum(len(environment.depends_on) for environment in environments)
        first = timed(environments)
        errors = check_and_plan(environments)
        median = statistics.median(timed(environments) for _ in range(rounds))
        print(
            f"{size:>6} {size:>6} {calls:>6} {errors:>6} {first * 1e3:>8.1f} ms {median * 1e3:>8.1f} ms"
            f" {median / size * 1e6:>6.1f} us"
        )
        if size == TARGET_SIZE:
            met = median * 1e3 < TARGET_MS
            verdict = 0 if met else 1
            outcome = "met" if met else "MISSED"
            print(f"target: median under {TARGET_MS:g} ms for {TARGET_SIZE} environments: {outcome}")
    return verdict


if __name__ == "__main__":
    sys.exit(main([int(arg) for arg in sys.argv[1:]] or [TARGET_SIZE, 10_000]))
