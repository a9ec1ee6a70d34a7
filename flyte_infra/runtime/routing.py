"""Where a task call runs: in this process (local runs), or on the callee environment's worker.

`Task.__call__` asks `active_router()`. Outside a worker that is an `InProcessRouter`; a worker
installs a `WorkerRouter` for its environment. Both live here, side by side, so a local run and a
deployed run differ only in the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import RemoteTaskError, TaskArgumentError
from .attempts import attempted, attempted_async
from .client import call_remote
from .codec import decode_arguments, decode_result, encode_arguments, encode_result

if TYPE_CHECKING:
    from ..model.environment import TaskEnvironment
    from ..model.task import Task

__all__ = [
    "InProcessRouter",
    "TaskRouter",
    "WorkerRouter",
    "active_router",
    "current_environment",
    "event_loop_running",
    "off_the_loop",
    "use_process_router",
    "use_router",
]

R = TypeVar("R")


class TaskRouter(Protocol):
    """Decides where a task call runs."""

    def call(self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


class InProcessRouter:
    """Runs every task in this process: the local mode of `flyte-infra run`.

    A call from a task of the same environment is a plain call, as in a worker, and so is a call
    from code outside any task (a script, a test). A call from another environment's task is made
    as a worker receives it: arguments and result go through JSON and the callee's type hints, the
    callee's own failure reaches the caller as a RemoteTaskError, and a sync callee runs with the
    caller's event loop set aside (`off_the_loop`).

    Threads and executors that a task starts do not inherit its context, so in-process their calls
    are plain calls; deployed, the worker routes them like the task's own.
    """

    def call(self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        caller = _current_environment.get()
        if caller is None or caller is task.environment:
            return _run_in(task, args, kwargs)
        sent = decode_arguments(task, encode_arguments(task, args, kwargs))
        if task.is_async:
            return _received_async(task, _run_in(task, (), sent))
        return off_the_loop(_received, task, sent)


class WorkerRouter:
    """A worker's router: tasks of the served environment run here, others on their own workers.

    Async remote calls run in a thread, so they do not block the worker's event loop.

    Args:
        environment: The name of the environment this worker serves.
    """

    def __init__(self, environment: str) -> None:
        self.environment = environment

    def call(self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if task.environment.name == self.environment:
            if task.is_async:
                return attempted_async(task, lambda: task.func(*args, **kwargs))
            return attempted(task, lambda: task.func(*args, **kwargs))
        if task.is_async:
            return asyncio.to_thread(call_remote, task, args, kwargs)
        return call_remote(task, args, kwargs)


_current_environment: contextvars.ContextVar[TaskEnvironment | None] = contextvars.ContextVar(
    "flyte_current_environment", default=None
)
"""The environment whose task is running in this context (in-process runs)."""


def current_environment() -> str | None:
    """The name of the environment whose task runs in this context (in-process or in a worker),
    or None outside any task."""
    environment = _current_environment.get()
    if environment is not None:
        return environment.name
    router = active_router()
    return router.environment if isinstance(router, WorkerRouter) else None


@contextlib.contextmanager
def _as(environment: TaskEnvironment) -> Iterator[None]:
    """Run the body as code of `environment`'s task."""
    token = _current_environment.set(environment)
    try:
        yield
    finally:
        _current_environment.reset(token)


def _run_in(task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call `task`'s function as code of its environment, with its retries and timeout: for an
    async task, the coroutine does."""
    if task.is_async:
        return _awaited_as(task.environment, attempted_async(task, lambda: task.func(*args, **kwargs)))
    with _as(task.environment):
        return attempted(task, lambda: task.func(*args, **kwargs))


async def _awaited_as(environment: TaskEnvironment, coroutine: Awaitable[Any]) -> Any:
    with _as(environment):
        return await coroutine


@contextlib.contextmanager
def _failure_reported(task: Task[..., Any]) -> Iterator[None]:
    """The task's own exception, as its worker reports it to a caller."""
    try:
        yield
    except (Exception, SystemExit) as error:  # deployed, an exiting worker drops the call: still an error
        raise RemoteTaskError(
            task.environment.name, task.qualified_name, type(error).__name__, str(error)
        ) from error


def _received(task: Task[..., Any], arguments: dict[str, Any]) -> Any:
    """A sync task run for a caller outside its environment, as its worker would answer."""
    with _failure_reported(task):
        result = _run_in(task, (), arguments)
    return _answered(task, result)


async def _received_async(task: Task[..., Any], outcome: Awaitable[Any]) -> Any:
    with _failure_reported(task):
        result = await outcome
    return _answered(task, result)


def _answered(task: Task[..., Any], result: Any) -> Any:
    """`result` as the caller receives it: encoded by the callee, decoded against the hint."""
    try:
        encoded = encode_result(task, result)
    except TaskArgumentError as error:  # the worker answers 500 BadResult
        raise RemoteTaskError(task.environment.name, task.qualified_name, "BadResult", str(error)) from error
    return decode_result(task, encoded)


def event_loop_running() -> bool:
    """Whether an event loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def off_the_loop(function: Callable[..., R], *args: Any) -> R:
    """`function(*args)` with no event loop running, as a worker runs sync tasks (so `asyncio.run`
    inside works): a loop running in this thread (Jupyter's, an async caller's) is set aside for
    the call, which blocks it, as a deployed call would. Still this thread, so Ctrl-C interrupts it
    and thread-bound objects stay usable."""
    loop = asyncio.events._get_running_loop()
    if loop is None:
        return function(*args)
    asyncio.events._set_running_loop(None)
    try:
        return function(*args)
    finally:
        asyncio.events._set_running_loop(loop)


_router: contextvars.ContextVar[TaskRouter | None] = contextvars.ContextVar("flyte_router", default=None)
_process_router: TaskRouter = InProcessRouter()


def active_router() -> TaskRouter:
    """The router task calls go through: this context's, else the process's (in-process by default)."""
    return _router.get() or _process_router


def use_router(router: TaskRouter) -> contextvars.Token[TaskRouter | None]:
    """Route task calls in this context through `router`; returns the token to reset it."""
    return _router.set(router)


def use_process_router(router: TaskRouter) -> None:
    """Route task calls through `router` wherever no context sets one: in every thread of a worker,
    including threads and executors that its tasks start (they do not inherit context variables)."""
    global _process_router
    _process_router = router
