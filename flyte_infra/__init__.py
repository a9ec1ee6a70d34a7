"""flyte-infra: Flyte-style task environments deployed as images and Kubernetes compute by Pulumi.

The public API is this module and `flyte_infra.errors`; the subpackages are internal layers:

- `model`: what users write (TaskEnvironment, Task, Resources), validated at construction, no I/O;
- `deploy`: pure planning (graph, package coverage, preflight, plan, stack settings, promotion);
- `artifacts`: Dockerfiles, manifests, rendered files, the diagram;
- `runtime`: task routing, the JSON codec, the worker and its client, in-process runs;
- `docker`, `pulumi`: adapters to the docker CLI and the Pulumi engine.

Example:
    ```python
    from flyte_infra import Resources, TaskEnvironment

    env = TaskEnvironment("train", packages=["numpy==2.0.1"], resources=Resources(cpu=2))

    @env.task
    def square(x: int) -> int:
        return x * x
    ```
"""

from .errors import (
    CycleError,
    DuplicateEnvironmentError,
    FlyteInfraError,
    GraphError,
    InvalidSpecError,
    LoadError,
    PreflightError,
    RemoteTaskError,
    TaskArgumentError,
)
from .model.environment import DEFAULT_IMAGE, Secret, TaskEnvironment
from .model.resources import GPU, Resources
from .model.task import Task
from .runtime.run import run

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
    "TaskArgumentError",
    "TaskEnvironment",
    "run",
]
