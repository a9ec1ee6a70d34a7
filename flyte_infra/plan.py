"""The deploy plan: order, parallel waves and each environment's image and compute (plain data)."""

from __future__ import annotations

from typing import Any

from .graph import EnvironmentGraph

__all__ = ["build_plan"]


def build_plan(graph: EnvironmentGraph) -> dict[str, Any]:
    """Order, waves, and per environment: image, packages, depends_on, requests/limits, GPU, tasks.

    Environments come in discovery order (roots first: about the order the program created them,
    which walks memory in order); `order` is the deploy order. Every list is the plan's own.
    """
    dependencies_of = graph.dependencies
    environments = {}
    for name, environment in graph.environments.items():
        resources = environment.resources
        requests, limits = resources.requests_and_limits()
        gpu = resources.gpu
        environments[name] = {
            "image": environment.image,
            "packages": list(environment.packages),
            "depends_on": list(dependencies_of[name]),
            "requests": requests,
            "limits": limits,
            "gpu": None if gpu is None else str(gpu),
            "tasks": sorted(environment.tasks),
        }
    return {"order": graph.order, "waves": [list(wave) for wave in graph.waves], "environments": environments}
