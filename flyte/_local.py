"""Flyte's run-time API with its local meaning: `run`, `with_runcontext`, `map`, `group`, `trace`,
`init*`, `ctx`, `custom_context`; remote-only calls (`deploy`, `build`, remote runs) fail with one
line naming them."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import flyte_infra
from flyte_infra.errors import UnsupportedFeatureError
from flyte_infra.model.task import Task
from flyte_infra.runtime.routing import current_environment

__all__ = [
    "Cron",
    "Run",
    "Trigger",
    "TriggerTime",
    "build",
    "ctx",
    "current_domain",
    "custom_context",
    "deploy",
    "group",
    "init",
    "init_from_api_key",
    "init_from_config",
    "init_in_cluster",
    "map",
    "run",
    "trace",
    "with_runcontext",
]


class Outputs(tuple[Any, ...]):
    """A run's outputs as Flyte gives them: a tuple, also by name (`o0`, `o1`, ...)."""

    @property
    def named_outputs(self) -> dict[str, Any]:
        return {f"o{index}": value for index, value in enumerate(self)}


@dataclasses.dataclass
class Run:
    """A finished local run: `outputs()` is its result as a tuple, `result` the value itself."""

    name: str
    result: Any
    phase: str = "SUCCEEDED"

    @property
    def url(self) -> str:
        return f"local://{self.name}"

    def outputs(self) -> Outputs:
        return Outputs(self.result if isinstance(self.result, tuple) else (self.result,))

    def wait(self, quiet: bool = False, wait_for: str = "terminal") -> None:
        """No effect: a local run has finished when `run` returns."""

    def __str__(self) -> str:
        return f"Run(name={self.name!r}, phase={self.phase}, result={self.result!r})"


def _in_thread(function: Callable[[], Any]) -> Any:
    """`function()` in a new thread (so an event loop running here is not blocked from within)."""
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(function)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="flyte-run")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class _Runner:
    """`flyte.run` and `flyte.with_runcontext(...)`: runs a task here, as `flyte-infra run` does."""

    def __init__(self, mode: str | None = None, env_vars: dict[str, str] | None = None, **_: Any) -> None:
        if mode not in (None, "local"):
            raise UnsupportedFeatureError(
                f"flyte.with_runcontext(mode={mode!r})", "runs are local here; deploy with `flyte-infra up`"
            )
        self.env_vars = dict(env_vars or {})

    def _run(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Run:
        if not isinstance(task, Task):
            raise UnsupportedFeatureError(
                f"flyte.run({getattr(task, '__name__', type(task).__name__)})", "give a task (@env.task)"
            )
        with _environment(self.env_vars):
            if task.is_async and _loop_running():
                result = _in_thread(functools.partial(flyte_infra.run, task, *args, **kwargs))
            else:
                result = flyte_infra.run(task, *args, **kwargs)
        return Run(task.qualified_name, result)

    def run(self, task: Any, *args: Any, **kwargs: Any) -> Run:
        return self._run(task, args, kwargs)

    __call__ = run

    async def aio(self, task: Any, *args: Any, **kwargs: Any) -> Run:
        return await asyncio.to_thread(self._run, task, args, kwargs)


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


run = _Runner()
"""`flyte.run(task, *args, **kwargs)`: run `task` here; returns a `Run` (`.outputs()`)."""


def with_runcontext(mode: str | None = None, **options: Any) -> _Runner:
    """A runner with Flyte's run options: `mode='local'` (or none) runs here; `env_vars` are set
    during the run; the other options have no effect locally."""
    return _Runner(mode, **options)


class _Mapper:
    """`flyte.map(task, *iterables)`: the task called per element (of the zipped iterables), in
    order; exceptions are yielded in place when `return_exceptions` (Flyte's default)."""

    def __call__(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        group_name: str | None = None,
        concurrency: int = 0,
        return_exceptions: bool = True,
    ) -> Iterator[Any]:
        for arguments in zip(*iterables, strict=False):
            try:
                result = func(*arguments)
                if inspect.isawaitable(result):
                    result = _in_thread(functools.partial(asyncio.run, _awaited(result)))
            except Exception as error:
                if not return_exceptions:
                    raise
                result = error
            yield result

    async def aio(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        group_name: str | None = None,
        concurrency: int = 0,
        return_exceptions: bool = True,
    ) -> AsyncIterator[Any]:
        for arguments in zip(*iterables, strict=False):
            try:
                result = func(*arguments)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as error:
                if not return_exceptions:
                    raise
                result = error
            yield result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


map = _Mapper()  # Flyte's name


@contextlib.contextmanager
def group(name: str) -> Iterator[None]:
    """Flyte labels the actions started inside; locally the body just runs."""
    yield


def trace(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flyte records a traced helper's calls for recovery; locally (and in workers) it is called as is."""
    return func


def init(*_: Any, **__: Any) -> None:
    """No effect: runs are local, deployment is `flyte-infra up`."""


init_from_config = init_from_api_key = init_in_cluster = init


def deploy(*_: Any, **__: Any) -> Any:
    raise UnsupportedFeatureError("flyte.deploy", "deploy with `flyte-infra up --stack STACK`")


def build(*_: Any, **__: Any) -> Any:
    raise UnsupportedFeatureError("flyte.build", "build images with `flyte-infra build --stack STACK`")


def current_domain() -> str:
    """`FLYTE_DOMAIN` if set, else Flyte's default domain, `development`."""
    return os.environ.get("FLYTE_DOMAIN", "development")


_custom: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "flyte_custom_context", default=None
)


@contextlib.contextmanager
def custom_context(**context: str) -> Iterator[None]:
    """Key/values visible as `flyte.ctx().custom_context` to tasks run inside (in-process)."""
    token = _custom.set({**(_custom.get() or {}), **context})
    try:
        yield
    finally:
        _custom.reset(token)


@dataclasses.dataclass(frozen=True)
class _Action:
    name: str


@dataclasses.dataclass(frozen=True)
class TaskContext:
    """The little of Flyte's task context that has a meaning here."""

    action: _Action
    custom_context: dict[str, str]
    environment: str


def ctx() -> TaskContext | None:
    """The running task's context, None outside a task (as in Flyte)."""
    environment = current_environment()
    if environment is None:
        return None
    return TaskContext(_Action(environment), dict(_custom.get() or {}), environment)


class Trigger:
    """Flyte's scheduled triggers: accepted on tasks (`triggers=`) without effect here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    @classmethod
    def _preset(cls, *args: Any, **kwargs: Any) -> Trigger:
        return cls(*args, **kwargs)

    hourly = minutely = daily = weekly = monthly = _preset


@dataclasses.dataclass(frozen=True)
class Cron:
    expression: str
    timezone: str = "UTC"


TriggerTime = object()
"""Flyte's placeholder for a trigger's time in `inputs=`: no effect here."""
