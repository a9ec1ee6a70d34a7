"""Session fixtures for the devbox's real services: dockerd + registry, the cluster, the Pulumi toolchain.

Each starts what it needs through `flyte_infra.devbox` (idempotent, seconds when already up) and
exports its variables. A service that cannot start fails the tests that need it: nothing skips,
except the engine tests on a machine with neither an installed toolchain nor
`../shared/third_party` to build one from, which say so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from flyte_infra.devbox.cli import up
from flyte_infra.devbox.cluster import Cluster
from flyte_infra.devbox.docker import DockerServices
from flyte_infra.devbox.layout import Layout
from flyte_infra.devbox.toolchain import Toolchain, ensure_toolchain, find_toolchain, third_party_dir


@pytest.fixture(scope="session")
def devbox_layout() -> Layout:
    return Layout.from_environment()


@contextlib.contextmanager
def _exported(variables: dict[str, str]) -> Iterator[None]:
    """These variables set for the rest of the session, as `scripts/services.sh env` exports them."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def docker_services(devbox_layout: Layout) -> Iterator[DockerServices]:
    """dockerd, the registry and the base image, up; DOCKER_HOST and friends exported."""
    up(devbox_layout, "docker")
    services = DockerServices(devbox_layout)
    with _exported(services.environment()):
        yield services


@pytest.fixture(scope="session")
def cluster(devbox_layout: Layout) -> Iterator[Cluster]:
    """The devbox cluster with its kwok nodes, up; KUBECONFIG exported."""
    up(devbox_layout, "cluster")
    running = Cluster(devbox_layout)
    with _exported(running.environment()):
        yield running


@pytest.fixture(scope="session")
def pulumi_toolchain(devbox_layout: Layout) -> Iterator[Toolchain]:
    """The pinned Pulumi toolchain, first on PATH; built into the cache when not installed."""
    if third_party_dir() is None and find_toolchain(devbox_layout) is None:
        pytest.skip("no Pulumi CLI installed and no ../shared/third_party to build one from")
    toolchain = ensure_toolchain(devbox_layout)
    with _exported(toolchain.environment()):
        yield toolchain
