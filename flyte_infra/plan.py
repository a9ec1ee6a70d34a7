"""The deploy plan: order, parallel waves and each environment's image and compute (plain data)."""

from __future__ import annotations

from typing import Any

from .graph import EnvironmentGraph

__all__ = ["build_plan"]


def build_plan(graph: EnvironmentGraph) -> dict[str, Any]:
    """Order, waves, and per environment: image, packages, depends_on, requests/limits, GPU, tasks."""
    order = graph.order
    environments = {}
    for name, dependencies in zip(order, map(graph.dependencies.__getitem__, order), strict=True):
        environment = graph.environments[name]
        resources = environment.resources
        requests, limits = resources.requests_and_limits()
        gpu = resources.gpu
        environments[name] = {
            "image": environment.image,
            "packages": list(environment.packages),
            "depends_on": list(dependencies),
            "requests": requests,
            "limits": limits,
            "gpu": None if gpu is None else str(gpu),
            "tasks": sorted(environment.tasks),
        }
    return {"order": order, "waves": [list(wave) for wave in graph.waves], "environments": environments}
