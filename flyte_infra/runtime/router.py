"""The worker's router: tasks of the served environment run here, others on their own workers."""

from __future__ import annotations

import asyncio
from typing import Any

from ..task import Task
from .client import call_remote

__all__ = ["WorkerRouter"]


class WorkerRouter:
    """Routes a task call by the task's environment; async remote calls do not block the loop."""

    def __init__(self, environment: str) -> None:
        self.environment = environment

    def call(self, task: Task[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if task.environment.name == self.environment:
            return task.func(*args, **kwargs)
        if task.is_async:
            return asyncio.to_thread(call_remote, task, args, kwargs)
        return call_remote(task, args, kwargs)
