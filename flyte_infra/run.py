"""Running tasks in-process: `flyte-infra run MODULE TASK --arg k=v` and `flyte_infra.run(task, ...)`."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import FlyteInfraError
from .loader import Program
from .runtime.codec import decode_arguments, decode_text_argument, encode_result
from .task import InProcessRouter, Task, event_loop_running, off_the_loop, use_router

__all__ = ["find_task", "run", "run_task"]

R = TypeVar("R")


def run(task: Task[R], /, *args: Any, **kwargs: Any) -> R:
    """Run a task (sync or async) here and return its result; tasks it calls run here too, whatever
    router the caller's context has."""
    return contextvars.copy_context().run(_run_in_process, task, args, kwargs)


def _run_in_process(task: Task[R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    if task.is_async and event_loop_running():
        raise FlyteInfraError(
            f"cannot run async task '{task.qualified_name}' inside a running event loop; await it"
        )
    use_router(InProcessRouter())  # in the copied context only
    if task.is_async:
        return asyncio.run(task(*args, **kwargs))  # type: ignore[arg-type]
    return off_the_loop(functools.partial(task, *args, **kwargs))  # e.g. from Jupyter's event loop


def find_task(program: Program, reference: str) -> Task[Any]:
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
        raise FlyteInfraError(f"module '{program.module_name}' has no task '{reference}' (it has: {known})")
    names = ", ".join(task.qualified_name for task in matches)
    raise FlyteInfraError(f"task '{reference}' is ambiguous ({names}); write it as environment.task")


def run_task(program: Program, reference: str, raw_args: Mapping[str, str]) -> Any:
    """Run `reference` in-process with `k=v` arguments (JSON, or plain strings), validated against its
    type hints; returns the result as JSON-ready data."""
    task = find_task(program, reference)
    arguments = decode_arguments(task, raw_args, decode_text_argument)
    return encode_result(task, run(task, **arguments))
