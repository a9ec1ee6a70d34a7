"""Fixtures shared by the tests: worker processes on loopback ports."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from .workers import free_port, start_worker, stop

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def ports() -> dict[str, int]:
    """A free loopback port for each of the relay fixture's environments."""
    return {"leaf": free_port(), "relay": free_port()}


@pytest.fixture
def worker() -> Iterator[StartWorker]:
    """Start a worker: `worker(module, environment, port, **variables)`; every worker started is
    stopped (SIGTERM, then SIGKILL) when the test ends, passed or not."""
    started: list[subprocess.Popen[bytes]] = []

    def start(module: str, environment: str, port: int, **variables: str) -> subprocess.Popen[bytes]:
        process = start_worker(module, environment, port, **variables)
        started.append(process)
        return process

    yield start
    stop(*started)
