"""Preflight + plan over generated graphs, beside a bare graphlib pass over the same edges.

Each environment depends on up to three earlier ones. Its packages are two of its own (specifiers
drawn from a pool) plus, pinned, every package of the environments it depends on, so parents cover
children as preflight demands; one environment in a hundred drops an inherited package, so findings
are produced and formatted too. Each environment parses its packages when it is constructed (its
validation does) and keeps them, parsed; the comparisons of differing requirement lines, and the
table that lets equal lists share one parsed set, are cleared before every timed run (cold).
Target: (preflight + plan) / graphlib <= 3, and linear growth from 1,000 to 10,000 environments.
Below each size, where the time goes: discovery, ordering (`ordered`, a graphlib pass of its own
included), the checks (preflight minus those two) and the plan, each timed on its own; and, outside
the ratio, what constructing the environments spends parsing their packages.

    python benchmarks/bench_core.py [--shuffled] [SIZE ...]

Parents accumulate their children's pins, so most generated environments list the same nine lines
and share one parsed set, as equal lists in any program do (about 2.6 KB per environment in all);
preflight then sees such a parent cover such a child by identity. `--shuffled` lists each
environment's packages in an order of its own, so that each holds a parsed set of its own (about
3.3 KB per environment), sharing only the parts that do not depend on the order (the set of lines
and their requirements): the cost when lists are not equal.

More sizes show how the ratio follows the caches rather than the code, since a bare graphlib pass
reads none of those kilobytes: `python benchmarks/bench_core.py 1000 2000 3000 5000 10000 20000`.
"""

from __future__ import annotations

import functools
import gc
import graphlib
import random
import sys
import time
from collections.abc import Callable

from flyte_infra import Resources, TaskEnvironment
from flyte_infra.deploy.graph import discover_edges, ordered
from flyte_infra.deploy.packages import clear_caches, package_set
from flyte_infra.deploy.plan import build_plan
from flyte_infra.deploy.preflight import preflight

NAMES = ("numpy", "pandas", "torch", "scikit_learn", "Requests", "pyarrow", "ray[tune]", "scipy", "attrs")
SPECIFIERS = ("", ">=1.0", "==2.1.0", "<3", "~=2.0", ">=2,<2.5")
PIN = "==2.1.0"  # satisfies every specifier above


def rounds(size: int) -> int:
    """Timed rounds per measurement: a shared VM is noisy, and small graphs are cheap to repeat."""
    return max(21, 100_000 // size)


def generate(
    size: int, seed: int = 7, faulty_every: int | None = 100, shuffled: bool = False
) -> list[TaskEnvironment]:
    """`size` environments; every `faulty_every`-th misses an inherited package (None: none does).
    `shuffled`: each lists its packages in an order of its own (the same graph and lines)."""
    rng = random.Random(seed)
    shuffler = random.Random(seed + 1)
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
        packages = sorted(name + PIN for name in inherited) + own
        if shuffled:
            shuffler.shuffle(packages)
        environments.append(
            TaskEnvironment(
                f"env-{index}",
                packages=packages,
                resources=Resources(cpu="500m", memory="1Gi", gpu="A100:1" if index % 10 == 0 else None),
                depends_on=depends_on,
            )
        )
    return environments


def best_of(runs: int, *actions: Callable[[], object]) -> list[float]:
    """The fastest of `runs` timings of each action, taken in rounds (a, b, a, b, ...) so that a
    slow stretch of a shared machine weighs on all of them alike."""
    timings: list[list[float]] = [[] for _ in actions]
    for _ in range(runs):
        for action, times in zip(actions, timings, strict=True):
            gc.collect()
            gc.disable()  # as timeit does: a collection landing in one run is noise, not the code's cost
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
            gc.enable()
    return [min(times) for times in timings]


def bare_graphlib(dependencies: dict[str, tuple[str, ...]]) -> None:
    sorter = graphlib.TopologicalSorter(dependencies)
    sorter.prepare()
    while sorter.is_active():
        ready = sorter.get_ready()
        sorter.done(*ready)


def ours(environments: list[TaskEnvironment]) -> int:
    clear_caches()  # cold: every differing pair of lines is compared again
    report = preflight(environments)
    build_plan(report.graph)  # type: ignore[arg-type]
    return len(report.errors)


def phases(environments: list[TaskEnvironment]) -> dict[str, float]:
    """Seconds of each part of `ours`, and of parsing every environment's packages (which their
    construction does, not preflight), each the best of `rounds` cold runs."""
    discovered = discover_edges(environments)
    graph = ordered(*discovered)

    def checks() -> None:
        clear_caches()
        preflight(environments)

    def parse() -> None:
        clear_caches()
        [package_set(environment.packages) for environment in environments]  # held, as environments do

    whole, found, sorted_, plan, parsed = best_of(
        rounds(len(environments)),
        checks,
        lambda: discover_edges(environments),
        lambda: ordered(*discovered),
        lambda: build_plan(graph),
        parse,
    )
    checked = whole - found - sorted_
    return {"discover": found, "order": sorted_, "checks": checked, "plan": plan, "parse": parsed}


def main(sizes: list[int], shuffled: bool = False) -> None:
    columns = ("envs", "edges", "errors", "preflight+plan", "graphlib", "ratio", "per env")
    print(
        " ".join(f"{column:>{width}}" for column, width in zip(columns, (7, 7, 6, 15, 10, 6, 9), strict=True))
    )
    for size in sizes:
        environments = generate(size, shuffled=shuffled)
        dependencies = {env.name: tuple(dep.name for dep in env.depends_on) for env in environments}
        edges = sum(map(len, dependencies.values()))
        errors = ours(environments)
        run_bare = functools.partial(bare_graphlib, dependencies)
        ours_seconds, bare_seconds = best_of(rounds(size), functools.partial(ours, environments), run_bare)
        print(
            f"{size:>7} {edges:>7} {errors:>6} {ours_seconds * 1e3:>12.1f} ms {bare_seconds * 1e3:>7.1f} ms"
            f" {ours_seconds / bare_seconds:>6.2f} {ours_seconds / size * 1e6:>6.1f} us"
        )
        seconds = phases(environments)
        parse = seconds.pop("parse")
        parts = ", ".join(f"{name} {part * 1e3:.1f} ms" for name, part in seconds.items())
        print(f"{'':>7} of which: {parts}")
        print(f"{'':>7} not in it: parsing the packages at construction, {parse * 1e3:.1f} ms")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main([int(arg) for arg in arguments if arg != "--shuffled"] or [1_000, 10_000], "--shuffled" in arguments)
