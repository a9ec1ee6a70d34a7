"""Running tasks in-process: `flyte-infra run MODULE TASK --arg k=v` and `flyte_infra.run(task, ...)`."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from ..errors import LoadError, UsageError
from .codec import decode_arguments, decode_text_argument, encode_result
from .routing import InProcessRouter, event_loop_running, off_the_loop, use_router

if TYPE_CHECKING:
    from ..loader import Program
    from ..model.task import Task

__all__ = ["find_task", "run", "run_task"]

P = ParamSpec("P")
R = TypeVar("R")


@overload
def run(task: Task[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


@overload
def run(task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


def run(task: Task[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any:
    """Run a task (sync or async) here and return its result; tasks it calls run here too, whatever
    router the caller's context has.

    Args:
        task: The task to run.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Example:
        ```python
        loss = flyte_infra.run(fit, epochs=3)
        ```
    """
    return contextvars.copy_context().run(_run_in_process, task, args, kwargs)


def _run_in_process(task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if task.is_async and event_loop_running():
        raise UsageError(
            f"cannot run async task '{task.qualified_name}' inside a running event loop; await it",
            subject="run()",
        )
    use_router(InProcessRouter())  # in the copied context only
    if task.is_async:
        return asyncio.run(task(*args, **kwargs))
    return off_the_loop(functools.partial(task, *args, **kwargs))  # e.g. from Jupyter's event loop


def find_task(program: Program, reference: str) -> Task[..., Any]:
    """The task named `task` (unique in the program) or `environment.task`."""
    environment_name, _, task_name = reference.rpartition(".")
    matches = [
        task
        for environment in program.environments
        if not environment_name or environment.name == environment_name
        for name, task in environment.tasks.items()
        if name == task_name
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(sorted(t.qualified_name for e in program.environments for t in e.tasks.values()))
        raise LoadError(
            f"module '{program.module_name}' has no task '{reference}' (it has: {known})",
            module=program.module_name,
        )
    names = ", ".join(task.qualified_name for task in matches)
    raise LoadError(
        f"task '{reference}' is ambiguous ({names}); write it as environment.task", module=program.module_name
    )


def run_task(program: Program, reference: str, raw_args: Mapping[str, str]) -> Any:
    """Run `reference` in-process with `k=v` arguments (JSON, or plain strings), validated against its
    type hints; returns the result as JSON-ready data."""
    task = find_task(program, reference)
    arguments = decode_arguments(task, raw_args, decode_text_argument)
    return encode_result(task, run(task, **arguments))
