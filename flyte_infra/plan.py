"""The deploy plan: order, parallel waves and each environment's image and compute (plain data)."""

from __future__ import annotations

from typing import Any

from .graph import EnvironmentGraph

__all__ = ["build_plan"]


def build_plan(graph: EnvironmentGraph) -> dict[str, Any]:
    """Order, waves, and per environment: image, packages, depends_on, requests/limits, GPU, tasks."""
    environments = {}
    for name in graph.order:
        environment = graph.environments[name]
        requests, limits = environment.resources.requests_and_limits()
        gpu = environment.resources.gpu
        environments[name] = {
            "image": environment.image,
            "packages": list(environment.packages),
            "depends_on": list(graph.dependencies[name]),
            "requests": requests,
            "limits": limits,
            "gpu": str(gpu) if gpu else None,
            "tasks": sorted(environment.tasks),
        }
    return {"order": graph.order, "waves": [list(wave) for wave in graph.waves], "environments": environments}
