"""The deploy plan: order, parallel waves and each environment's image and compute (plain data)."""

from __future__ import annotations

from typing import Any

from .graph import EnvironmentGraph

__all__ = ["build_plan"]


def build_plan(graph: EnvironmentGraph) -> dict[str, Any]:
    """Order, waves, and per environment: image, packages, depends_on, requests/limits, GPU, tasks.

    Environments come in discovery order (roots first: about the order the program created them);
    `order` is the deploy order. Sequences are tuples copied from the environments, so the plan is
    a snapshot that does not change with them.
    """
    dependencies_of = graph.dependencies
    environments = {}
    for name, environment in graph.environments.items():
        resources = environment.resources
        requests, limits = resources.requests_and_limits()
        gpu = resources.gpu
        tasks = environment.tasks
        environments[name] = {
            "image": environment.image,
            "packages": tuple(environment.packages),
            "depends_on": dependencies_of[name],
            "requests": requests,
            "limits": limits,
            "gpu": None if gpu is None else str(gpu),
            "tasks": tuple(sorted(tasks)) if tasks else (),
        }
    return {"order": tuple(graph.order), "waves": graph.waves, "environments": environments}
