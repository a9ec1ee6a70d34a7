"""Tasks: functions registered on a TaskEnvironment with `@env.task`, sync or async.

A call goes through the active router (`flyte_infra.runtime.routing`): in-process by default, or,
inside a deployed worker, to the worker of the task's own environment when that is not the
environment being served.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, ParamSpec, TypeVar

from ..errors import InvalidSpecError
from ..runtime.routing import active_router

if TYPE_CHECKING:
    from .environment import TaskEnvironment

__all__ = ["Task"]

P = ParamSpec("P")
R = TypeVar("R")

_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Task(Generic[P, R]):
    """A function that runs in one TaskEnvironment's image and compute.

    Created by `@env.task`, never directly. Calling it keeps the function's signature: `Task[P, R]`
    is called with the function's parameters `P` and returns its `R` (a coroutine for an async
    task, to be awaited). Arguments travel by name as JSON between environments, so parameters must
    be named (positional-or-keyword, or keyword-only) and type hints must be JSON-able.

    Args:
        func: The function, a named `def` or `async def`.
        environment: The environment whose image and compute it runs in.

    Example:
        ```python
        env = TaskEnvironment("train", packages=["torch==2.3.1"])

        @env.task
        def fit(epochs: int) -> float:
            return 0.1 * epochs

        loss: float = fit(epochs=3)
        ```
    """

    def __init__(self, func: Callable[P, R], environment: TaskEnvironment) -> None:
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
        """The function's signature."""
        return inspect.signature(self.func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return active_router().call(self, args, kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        kind = "async task" if self.is_async else "task"
        return f"<{kind} {self.qualified_name}>"
