"""Flyte 2's task and environment options: ReusePolicy, PodTemplate, Cache, Timeout, RetryStrategy.

Their fields mirror flyte-sdk's. What each one does here is in the README ("Flyte 2 code"):
`retries` and `timeout` are honoured by the runtime; `ReusePolicy` sets the Deployment's replicas
and the worker's concurrency; `PodTemplate` is merged into the pod spec, within what Pod Security
"restricted" allows; `Cache` is accepted without effect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..errors import UnsupportedFeatureError

__all__ = [
    "Backoff",
    "Cache",
    "PodTemplate",
    "RetryStrategy",
    "ReusePolicy",
    "Timeout",
    "retry_strategy",
    "timeout_seconds",
]


@dataclasses.dataclass(frozen=True)
class ReusePolicy:
    """Flyte's reusable containers; here the environment's Deployment: `replicas` pods (the smaller
    bound of a `(min, max)` pair: no autoscaler is deployed), each running at most `concurrency`
    tasks at once. `idle_ttl`, `scaledown_ttl` and `scope` have no effect (workers stay up)."""

    replicas: int | tuple[int, int] = 2
    idle_ttl: int | timedelta = 30
    concurrency: int = 1
    scaledown_ttl: int | timedelta = 30
    scope: str = "global"

    def __post_init__(self) -> None:
        low = self.replicas[0] if isinstance(self.replicas, tuple) else self.replicas
        high = self.replicas[1] if isinstance(self.replicas, tuple) else self.replicas
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise ValueError(
                f"ReusePolicy replicas={self.replicas!r}: give n >= 1 or (min, max), 1 <= min <= max"
            )
        if not isinstance(self.concurrency, int) or self.concurrency < 0:
            raise ValueError(f"ReusePolicy concurrency={self.concurrency!r}: give an int >= 0 (0: no limit)")

    @property
    def min_replicas(self) -> int:
        return self.replicas[0] if isinstance(self.replicas, tuple) else self.replicas


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff between attempts: base * factor**attempt, at most `cap`."""

    base: timedelta | float = timedelta(seconds=1)
    factor: float = 1.0
    cap: timedelta | float | None = None

    def delay(self, attempt: int) -> float:
        base = _seconds(self.base)
        delay = base * self.factor**attempt
        return min(delay, _seconds(self.cap)) if self.cap is not None else delay


@dataclasses.dataclass(frozen=True)
class RetryStrategy:
    """`count` more attempts after a failure, with an optional backoff (none: at once)."""

    count: int
    backoff: Backoff | None = None


@dataclasses.dataclass(frozen=True)
class Timeout:
    """`max_runtime` bounds each attempt of a task; `max_queued_time` and `deadline` have no effect
    here (nothing is queued: a worker runs a call when it arrives)."""

    max_runtime: timedelta | int | None = None
    max_queued_time: timedelta | int | None = None
    deadline: timedelta | int | None = None


@dataclasses.dataclass(frozen=True)
class Cache:
    """Flyte's result cache: accepted without effect (every call runs)."""

    behavior: str = "auto"
    version_override: str | None = None
    serialize: bool = False
    ignored_inputs: tuple[str, ...] | str = ()
    salt: str = ""
    policies: Any = None

    def __post_init__(self) -> None:
        check_cache(self.behavior)


def check_cache(value: Any) -> Any:
    """`value` if it is a Flyte cache request (`auto`, `override`, `disable`, or a Cache)."""
    if isinstance(value, Cache) or value in ("auto", "override", "disable"):
        return value
    raise ValueError(f"cache={value!r:.60}: give 'auto', 'override', 'disable' or flyte.Cache(...)")


def _seconds(value: timedelta | float | int | None) -> float:
    if value is None:
        return 0.0
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def retry_strategy(retries: Any) -> RetryStrategy:
    """A task's `retries` (an int or a RetryStrategy) as a RetryStrategy; ValueError if neither."""
    if isinstance(retries, RetryStrategy):
        strategy = retries
    elif isinstance(retries, int) and not isinstance(retries, bool):
        strategy = RetryStrategy(retries)
    else:
        raise ValueError(f"retries={retries!r:.60}: give an int or flyte.RetryStrategy(count, backoff)")
    if strategy.count < 0:
        raise ValueError(f"retries={strategy.count}: give 0 or more")
    return strategy


def timeout_seconds(timeout: Any) -> float | None:
    """Seconds each attempt may run (`timeout` as int seconds, timedelta or Timeout); None: no bound."""
    if isinstance(timeout, Timeout):
        timeout = timeout.max_runtime
    if timeout is None or timeout == 0:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float | timedelta):
        raise ValueError(f"timeout={timeout!r:.60}: give seconds, a timedelta or flyte.Timeout(...)")
    seconds = _seconds(timeout)
    if seconds < 0:
        raise ValueError(f"timeout={timeout!r:.60}: must not be negative")
    return seconds


_POD_FIELDS = frozenset(
    {
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
        "terminationGracePeriodSeconds",
        "topologySpreadConstraints",
        "schedulerName",
        "runtimeClassName",
        "volumes",
        "containers",
    }
)
"""Pod spec fields a pod template may set: none weakens Pod Security "restricted"."""
_CONTAINER_FIELDS = frozenset({"name", "env", "envFrom", "volumeMounts"})
_VOLUME_SOURCES = frozenset(
    {"emptyDir", "configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim", "ephemeral"}
)


@dataclasses.dataclass(frozen=True)
class PodTemplate:
    """Flyte's pod template, merged into the worker's pod. `pod_spec` is a `kubernetes.client.V1PodSpec`
    or a dict in the API's camelCase; only fields that keep Pod Security "restricted" are taken
    (`nodeSelector`, `tolerations`, `affinity`, `priorityClassName`, `terminationGracePeriodSeconds`,
    `topologySpreadConstraints`, `schedulerName`, `runtimeClassName`, non-host `volumes`, and `env`,
    `envFrom`, `volumeMounts` of the primary container); anything else is refused, naming it."""

    pod_spec: Any = None
    primary_container_name: str = "primary"
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None

    def with_termination_grace_period(self, seconds: int | timedelta) -> PodTemplate:
        spec = dict(self.spec)
        spec["terminationGracePeriodSeconds"] = int(_seconds(seconds))
        return dataclasses.replace(self, pod_spec=spec)

    def allow_fuse(self, privileged: bool = False) -> PodTemplate:
        raise UnsupportedFeatureError(
            "flyte.PodTemplate.allow_fuse",
            "FUSE needs /dev/fuse or privilege, which Pod Security 'restricted' forbids",
        )

    @property
    def spec(self) -> dict[str, Any]:
        """The pod spec as a dict, checked; UnsupportedFeatureError naming a field that is not allowed."""
        spec = _as_dict(self.pod_spec)
        for key in spec:
            if key not in _POD_FIELDS:
                raise _refused(f"pod_spec.{key}")
        for index, volume in enumerate(spec.get("volumes") or []):
            sources = set(volume) - {"name"}
            if not sources <= _VOLUME_SOURCES:
                raise _refused(f"pod_spec.volumes[{index}].{sorted(sources - _VOLUME_SOURCES)[0]}")
        for index, container in enumerate(spec.get("containers") or []):
            if container.get("name") != self.primary_container_name:
                raise _refused(f"pod_spec.containers[{index}] (only the primary container is merged)")
            for key in container:
                if key not in _CONTAINER_FIELDS:
                    raise _refused(f"pod_spec.containers[{index}].{key}")
        return spec


def _refused(field: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError(
        f"PodTemplate {field}",
        "the worker's pod must pass Pod Security 'restricted' and keep its own image and resources",
    )


def _as_dict(pod_spec: Any) -> dict[str, Any]:
    if pod_spec is None:
        return {}
    if isinstance(pod_spec, Mapping):
        return {key: value for key, value in pod_spec.items() if value is not None}
    try:  # a kubernetes.client model: serialised as the API's JSON (camelCase, no None)
        from kubernetes.client import ApiClient

        serialized: dict[str, Any] = ApiClient().sanitize_for_serialization(pod_spec)  # type: ignore[no-untyped-call]
        return serialized
    except ImportError:
        raise UnsupportedFeatureError(
            "PodTemplate(pod_spec=V1PodSpec)", "install the kubernetes package, or give a dict"
        ) from None
