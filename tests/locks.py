"""Locks for pure tests: each environment's closure is its own requirements plus the runtime's, by
name, with made-up wheels (no resolver, no network). Real resolutions are tested in test_lock."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from flyte_infra.model.environment import TaskEnvironment
from flyte_infra.packaging.lock import Lock, LockedPackage, LockGroup, lock_inputs
from flyte_infra.packaging.resolve import _requirement_name


def fake_lock(environments: Iterable[TaskEnvironment]) -> Lock:
    groups = []
    for item in lock_inputs(environments):
        closures = {
            name: tuple(sorted({_requirement_name(line) for line in item.requirements[name]}))
            for name in item.environments
        }
        packages = {
            name: LockedPackage(
                name,
                "1.0",
                f"https://index.invalid/{name}-1.0-py3-none-any.whl",
                hashlib.sha256(name.encode()).hexdigest(),
            )
            for closure in closures.values()
            for name in closure
        }
        groups.append(LockGroup(item.python, item.input_hash, packages, closures))
    return Lock(tuple(groups))


CONFLICTING_DAG = """\
from flyte_infra import TaskEnvironment
data = TaskEnvironment("data", packages=["pandas==2.2.3"])
train = TaskEnvironment("train", packages=["pandas==2.2.3", "numpy<1.22"], depends_on=[data])
"""
"""A program whose lines each resolve, and pass preflight's specifier check, but not together:
pandas 2.2.3 needs a numpy newer than 1.22. Only resolving the DAG finds it."""
