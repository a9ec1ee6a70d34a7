"""Tasks: functions registered on a TaskEnvironment with `@env.task`, sync or async.

A call goes through the active router: in-process by default, or, inside a deployed worker, to the
worker of the task's own environment when that is not the environment being served.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from .environment import TaskEnvironment

__all__ = ["Task", "TaskRouter", "active_router", "use_router"]

R = TypeVar("R")


class TaskRouter(Protocol):
    """Decides where a task call runs."""

    def call(self, task: Task[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


class InProcessRouter:
    """Runs every task in this process: the local mode of `flyte-infra run`."""

    def call(self, task: Task[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return task.func(*args, **kwargs)


_IN_PROCESS = InProcessRouter()
_router: contextvars.ContextVar[TaskRouter | None] = contextvars.ContextVar("flyte_router", default=None)


def active_router() -> TaskRouter:
    """The router task calls go through in this context."""
    return _router.get() or _IN_PROCESS


def use_router(router: TaskRouter) -> contextvars.Token[TaskRouter | None]:
    """Route task calls in this context through `router`; returns the token to reset it."""
    return _router.set(router)


class Task(Generic[R]):
    """A function that runs in one TaskEnvironment's image and compute."""

    def __init__(self, func: Callable[..., R], environment: TaskEnvironment) -> None:
        self.func = func
        self.environment = environment
        self.name: str = func.__name__
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
