"""Tasks: functions registered on a TaskEnvironment with `@env.task`, sync or async.

A call goes through the active router: in-process by default, or, inside a deployed worker, to the
worker of the task's own environment when that is not the environment being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .errors import InvalidSpecError, RemoteTaskError

if TYPE_CHECKING:
    from .environment import TaskEnvironment

__all__ = ["Task", "TaskRouter", "active_router", "use_process_router", "use_router"]

R = TypeVar("R")


class TaskRouter(Protocol):
    """Decides where a task call runs."""

    def call(self, task: Task[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


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

    def call(self, task: Task[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        caller = _current_environment.get()
        if caller is None or caller is task.environment:
            return _run_in(task, args, kwargs)
        from .runtime.codec import decode_arguments, encode_arguments

        sent = decode_arguments(task, encode_arguments(task, args, kwargs))
        if task.is_async:
            return _received_async(task, _run_in(task, (), sent))
        return off_the_loop(_received, task, sent)


_current_environment: contextvars.ContextVar[TaskEnvironment | None] = contextvars.ContextVar(
    "flyte_current_environment", default=None
)
"""The environment whose task is running in this context (in-process runs)."""


@contextlib.contextmanager
def _as(environment: TaskEnvironment) -> Iterator[None]:
    """Run the body as code of `environment`'s task."""
    token = _current_environment.set(environment)
    try:
        yield
    finally:
        _current_environment.reset(token)


def _run_in(task: Task[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call `task`'s function as code of its environment: for an async task, the coroutine does."""
    if task.is_async:
        return _awaited_as(task.environment, task.func(*args, **kwargs))
    with _as(task.environment):
        return task.func(*args, **kwargs)


async def _awaited_as(environment: TaskEnvironment, coroutine: Awaitable[Any]) -> Any:
    with _as(environment):
        return await coroutine


@contextlib.contextmanager
def _failure_reported(task: Task[Any]) -> Iterator[None]:
    """The task's own exception, as its worker reports it to a caller."""
    try:
        yield
    except (Exception, SystemExit) as error:  # deployed, an exiting worker drops the call: still an error
        name, environment = task.qualified_name, task.environment.name
        raise RemoteTaskError.failed(name, environment, type(error).__name__, str(error)) from error


def _received(task: Task[Any], arguments: dict[str, Any]) -> Any:
    """A sync task run for a caller outside its environment, as its worker would answer."""
    with _failure_reported(task):
        result = _run_in(task, (), arguments)
    return _answered(task, result)


async def _received_async(task: Task[Any], outcome: Awaitable[Any]) -> Any:
    with _failure_reported(task):
        result = await outcome
    return _answered(task, result)


def _answered(task: Task[Any], result: Any) -> Any:
    """`result` as the caller receives it: encoded by the callee, decoded against the hint."""
    from .runtime.codec import TaskArgumentError, decode_result, encode_result

    try:
        encoded = encode_result(task, result)
    except TaskArgumentError as error:  # the worker answers 500 BadResult
        raise RemoteTaskError.failed(
            task.qualified_name, task.environment.name, "BadResult", str(error)
        ) from None
    return decode_result(task, encoded)


def event_loop_running() -> bool:
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


_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Task(Generic[R]):
    """A function that runs in one TaskEnvironment's image and compute."""

    def __init__(self, func: Callable[..., R], environment: TaskEnvironment) -> None:
        name = getattr(func, "__name__", "")
        if not (inspect.isfunction(func) and name.isidentifier()):
            raise InvalidSpecError(
                f"TaskEnvironment '{environment.name}'",
                "task",
                f"{func!r} is not a named function (def or async def); a task is called by its name",
            )
        for parameter in inspect.signature(func).parameters.values():
            if parameter.kind not in _BY_NAME:
                raise InvalidSpecError(
                    f"TaskEnvironment '{environment.name}'",
                    f"task '{name}'",
                    f"parameter '{parameter.name}' is {parameter.kind.description}; a task's arguments "
                    "travel by name as JSON, so use named parameters (keyword-only is fine)",
                )
        self.func = func
        self.environment = environment
        self.name: str = name
        self.is_async = inspect.iscoroutinefunction(func)
        functools.update_wrapper(self, func)

    @property
    def qualified_name(self) -> str:
        """`environment.task`, unique across a graph of environments."""
        return f"{self.environment.name}.{self.name}"

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.func)

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return active_router().call(self, args, kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        kind = "async task" if self.is_async else "task"
        return f"<{kind} {self.qualified_name}>"
