"""flyte-infra: Flyte-style task environments deployed as images and Kubernetes compute by Pulumi."""

from .environment import DEFAULT_IMAGE, Secret, TaskEnvironment
from .errors import (
    CycleError,
    DuplicateEnvironmentError,
    FlyteInfraError,
    GraphError,
    InvalidSpecError,
    LoadError,
    PreflightError,
    RemoteTaskError,
)
from .resources import GPU, Resources
from .run import run
from .task import Task

__all__ = [
    "DEFAULT_IMAGE",
    "GPU",
    "CycleError",
    "DuplicateEnvironmentError",
    "FlyteInfraError",
    "GraphError",
    "InvalidSpecError",
    "LoadError",
    "PreflightError",
    "RemoteTaskError",
    "Resources",
    "Secret",
    "Task",
    "TaskEnvironment",
    "run",
]
