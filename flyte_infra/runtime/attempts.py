"""A task's `retries` and `timeout`, applied to each call where it runs: in-process and in workers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import TaskTimeoutError

if TYPE_CHECKING:
    from ..model.task import Task

__all__ = ["attempted", "attempted_async"]


def _delay(task: Task[..., Any], attempt: int) -> float:
    backoff = task.retries.backoff
    return backoff.delay(attempt) if backoff is not None else 0.0


def attempted(task: Task[..., Any], call: Callable[[], Any]) -> Any:
    """`call()` (the body of sync `task`) with up to `task.retries.count` more attempts after an
    exception, each bounded by `task.timeout` (TaskTimeoutError; the thread is abandoned)."""
    if not task.retries.count and task.timeout is None:
        return call()
    attempt = 0
    while True:
        try:
            return _bounded(task, call)
        except Exception:
            if attempt >= task.retries.count:
                raise
        time.sleep(_delay(task, attempt))
        attempt += 1


def _bounded(task: Task[..., Any], call: Callable[[], Any]) -> Any:
    if task.timeout is None:
        return call()
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"timeout-{task.name}")
    future = pool.submit(contextvars.copy_context().run, call)
    pool.shutdown(wait=False)
    try:
        return future.result(timeout=task.timeout)
    except concurrent.futures.TimeoutError:
        raise TaskTimeoutError(task.qualified_name, task.timeout) from None


async def attempted_async(task: Task[..., Any], start: Callable[[], Awaitable[Any]]) -> Any:
    """As `attempted`, for an async task: `start()` makes a new coroutine per attempt, cancelled at
    the timeout."""
    attempt = 0
    while True:
        try:
            if task.timeout is None:
                return await start()
            try:
                return await asyncio.wait_for(start(), task.timeout)
            except TimeoutError:
                raise TaskTimeoutError(task.qualified_name, task.timeout) from None
        except Exception:
            if attempt >= task.retries.count:
                raise
        await asyncio.sleep(_delay(task, attempt))
        attempt += 1
