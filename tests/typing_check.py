"""Checked by mypy, not run by pytest: the public signatures carry their types.

Each `assert_type` fails the mypy run if the type stops flowing; each `type: ignore[...]` marks a
call mypy must reject (with `warn_unused_ignores`, strict mode fails if it stops rejecting it).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

import flyte_infra as flyte
from flyte_infra import Resources, Task, TaskEnvironment

env = TaskEnvironment("typed", packages=["numpy==2.0.1"], resources=Resources(cpu="1"))
TaskEnvironment("typed-2", image=3)  # type: ignore[arg-type]
TaskEnvironment("typed-3", packagez=["numpy"])  # type: ignore[arg-type]  # unknown keywords are Never

bigger = env.clone_with("typed-big", resources=Resources(gpu="A100:1"))
assert_type(bigger, TaskEnvironment)
env.clone_with(resources=Resources(cpu="2"))  # type: ignore[call-arg]


@env.task
def scale(values: list[float], factor: float = 2.0) -> list[float]:
    return [value * factor for value in values]


@env.task()
async def total(values: list[float]) -> float:
    return sum(values)


typed_task: Task[[list[float], float], list[float]] = scale
assert_type(scale([1.0], factor=3.0), list[float])
scale("not a list")  # type: ignore[arg-type]
scale([1.0], scale=2)  # type: ignore[call-arg]
pending: Coroutine[Any, Any, float] = total([1.0])  # an async task's call is awaited
pending.close()
assert_type(flyte.run(scale, [1.0]), list[float])
assert_type(flyte.run(total, [1.0]), float)
flyte.run(scale, "not a list")  # type: ignore[call-overload]
