"""The Pulumi adapter: turns the pure core's environments, Dockerfiles and manifests into resources."""

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
