"""The Pulumi adapter: turns the pure core's environments, Dockerfiles and manifests into resources.

The only package that imports Pulumi. Internal: the public API is `flyte_infra` and `flyte_infra.errors`.
"""

from .component import TYPE_TOKEN, KubernetesObject, TaskEnvironmentArgs, TaskEnvironmentComponent
from .program import deploy, main

__all__ = [
    "TYPE_TOKEN",
    "KubernetesObject",
    "TaskEnvironmentArgs",
    "TaskEnvironmentComponent",
    "deploy",
    "main",
]
