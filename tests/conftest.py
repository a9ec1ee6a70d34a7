"""Fixtures shared by the tests: worker processes on loopback ports, and the devbox's real services
(dockerd and registry, the cluster, the Pulumi toolchain) from `tests/services.py`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from .services import cluster, devbox_layout, docker_services, pulumi_toolchain
from .workers import free_port, start_worker, stop

__all__ = ["cluster", "devbox_layout", "docker_services", "ports", "pulumi_toolchain", "worker"]

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
