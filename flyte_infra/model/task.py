"""Tasks: functions registered on a TaskEnvironment with `@env.task`, sync or async.

A call goes through the active router (`flyte_infra.runtime.routing`): in-process by default, or,
inside a deployed worker, to the worker of the task's own environment when that is not the
environment being served.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from ..errors import InvalidSpecError, UnsupportedFeatureError
from ..runtime.routing import active_router
from .options import RetryStrategy, check_cache, retry_strategy, timeout_seconds

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

    retries: RetryStrategy
    """More attempts after an exception (`retries=`), honoured in-process and in workers."""
    timeout: float | None
    """Seconds each attempt may run (`timeout=`), or None."""
    options: Mapping[str, Any]
    """Flyte's other task options as given (short_name, cache, queue, report, ...): no effect here."""

    def __init__(
        self,
        func: Callable[P, R],
        environment: TaskEnvironment,
        *,
        retries: int | RetryStrategy = 0,
        timeout: Any = None,
        **options: Any,
    ) -> None:
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
        where = f"TaskEnvironment '{environment.name}'"
        for option, reason in (
            ("pod_template", "a pod template applies to the whole environment: give it to TaskEnvironment"),
            ("task_resolver", "tasks are found by name in the module"),
        ):
            if options.get(option) is not None:
                raise UnsupportedFeatureError(f"{where}: task '{name}' {option}=", reason)
        try:
            self.retries = retry_strategy(retries)
            self.timeout = timeout_seconds(timeout)
            if options.get("cache") is not None:
                check_cache(options["cache"])
        except ValueError as error:
            raise InvalidSpecError(where, f"task '{name}'", str(error)) from None
        self.options = {key: value for key, value in options.items() if value is not None}
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

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Flyte's awaitable form of a call: the result of a sync or async task."""
        result: Any = self(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    def forward(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Flyte's direct call of the function body, bypassing routing, retries and timeout."""
        return self.func(*args, **kwargs)  # type: ignore[no-any-return]

    def override(self, *, retries: Any = None, timeout: Any = None, **options: Any) -> Task[P, R]:
        """A copy of this task with other options (Flyte's `.override(...)`): `retries` and `timeout`
        take effect; `resources`, `reusable`, `env_vars`, `secrets`, `pod_template` apply to a whole
        environment here and are refused when they differ; the rest are kept without effect."""
        for option in ("resources", "reusable", "env_vars", "secrets", "pod_template"):
            if options.get(option) is not None and options[option] != getattr(self.environment, option, None):
                raise UnsupportedFeatureError(
                    f"task '{self.qualified_name}'.override({option}=...)",
                    "it applies to a whole environment here: clone_with(...) a new environment instead",
                )
        copied = copy.copy(self)
        try:
            if retries is not None:
                copied.retries = retry_strategy(retries)
            if timeout is not None:
                copied.timeout = timeout_seconds(timeout)
        except ValueError as error:
            raise InvalidSpecError(f"task '{self.qualified_name}'", "override", str(error)) from None
        copied.options = {
            **self.options,
            **{key: value for key, value in options.items() if value is not None},
        }
        return copied

    def __repr__(self) -> str:
        kind = "async task" if self.is_async else "task"
        return f"<{kind} {self.qualified_name}>"
