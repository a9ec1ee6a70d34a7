"""`flyte`: Flyte 2's API as flyte-infra provides it, so unmodified Flyte 2 code loads and deploys.

This package ships with flyte-infra. Environments, tasks, resources and the Image builder are
flyte-infra's (`flyte_infra`); `run`, `with_runcontext`, `map`, `group`, `trace` and `init*` have
their local meaning. What is mapped to what, and what is accepted without effect, is in the
README ("Flyte 2 code"). Anything of Flyte's that is not here fails with one line naming it.
"""

from __future__ import annotations

import logging
from typing import Any

from flyte_infra.errors import UnsupportedFeatureError
from flyte_infra.model.environment import Secret, TaskEnvironment
from flyte_infra.model.image import Image
from flyte_infra.model.options import Backoff, Cache, PodTemplate, RetryStrategy, ReusePolicy, Timeout
from flyte_infra.model.resources import Resources
from flyte_infra.model.task import Task

from . import errors, io, report
from ._devices import AMD_GPU, GPU, HABANA_GAUDI, TPU, Device, Neuron
from ._local import (
    Cron,
    Run,
    Trigger,
    TriggerTime,
    build,
    ctx,
    current_domain,
    custom_context,
    deploy,
    group,
    init,
    init_from_api_key,
    init_from_config,
    init_in_cluster,
    map,  # Flyte's name
    run,
    trace,
    with_runcontext,
)

logger = logging.getLogger("flyte")
"""The user's logger, as Flyte's."""

__version__ = "2.0.0+flyte-infra"

__all__ = [
    "AMD_GPU",
    "GPU",
    "HABANA_GAUDI",
    "TPU",
    "Backoff",
    "Cache",
    "Cron",
    "Device",
    "Image",
    "Neuron",
    "PodTemplate",
    "Resources",
    "RetryStrategy",
    "ReusePolicy",
    "Run",
    "Secret",
    "Task",
    "TaskEnvironment",
    "Timeout",
    "Trigger",
    "TriggerTime",
    "build",
    "ctx",
    "current_domain",
    "custom_context",
    "deploy",
    "errors",
    "group",
    "init",
    "init_from_api_key",
    "init_from_config",
    "init_in_cluster",
    "io",
    "logger",
    "map",
    "report",
    "run",
    "trace",
    "with_runcontext",
]


def __getattr__(name: str) -> Any:
    """Flyte API this package lacks: one line naming it."""
    if name.startswith("__"):
        raise AttributeError(name)
    raise UnsupportedFeatureError(f"flyte.{name}", "flyte-infra does not provide it")
