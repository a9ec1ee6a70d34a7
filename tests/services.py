"""Session fixtures for the devbox's real services: dockerd + registry, the cluster, the Pulumi toolchain.

Each starts what it needs through `flyte_infra.devbox` (idempotent, seconds when already up) and
exports its variables. A service that cannot start fails the tests that need it: nothing skips,
except the engine tests on a machine with neither an installed toolchain nor
`../shared/third_party` to build one from, which say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from flyte_infra.devbox.apt import ensure_packages
from flyte_infra.devbox.cluster import PACKAGES as CLUSTER_PACKAGES
from flyte_infra.devbox.cluster import Cluster
from flyte_infra.devbox.docker import PACKAGES as DOCKER_PACKAGES
from flyte_infra.devbox.docker import DockerServices
from flyte_infra.devbox.layout import Layout
from flyte_infra.devbox.supervisor import Supervisor, devbox_lock
from flyte_infra.devbox.toolchain import Toolchain, ensure_toolchain, third_party_dir


@pytest.fixture(scope="session")
def devbox_layout() -> Layout:
    return Layout.from_environment()


@pytest.fixture(scope="session")
def docker_services(devbox_layout: Layout) -> Iterator[DockerServices]:
    """dockerd, the registry and the base image, up; DOCKER_HOST and friends exported."""
    services = DockerServices(devbox_layout)
    with devbox_lock(devbox_layout):
        ensure_packages(DOCKER_PACKAGES, devbox_layout.logs / "apt.log")
        services.up(Supervisor(devbox_layout))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in services.environment().items():
            patch.setenv(name, value)
        yield services


@pytest.fixture(scope="session")
def cluster(devbox_layout: Layout) -> Iterator[Cluster]:
    """The devbox cluster with its kwok nodes, up; KUBECONFIG exported."""
    running = Cluster(devbox_layout)
    with devbox_lock(devbox_layout):
        ensure_packages(CLUSTER_PACKAGES, devbox_layout.logs / "apt.log")
        running.up(Supervisor(devbox_layout))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in running.environment().items():
            patch.setenv(name, value)
        yield running


@pytest.fixture(scope="session")
def pulumi_toolchain(devbox_layout: Layout) -> Iterator[Toolchain]:
    """The pinned Pulumi toolchain, first on PATH; built into the cache when not installed."""
    if third_party_dir() is None and not _installed_pulumi():
        pytest.skip("no Pulumi CLI installed and no ../shared/third_party to build one from")
    toolchain = ensure_toolchain(devbox_layout)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in toolchain.environment().items():
            patch.setenv(name, value)
        yield toolchain


def _installed_pulumi() -> bool:
    return any(os.access(os.path.join(folder, "pulumi"), os.X_OK) for folder in os.environ["PATH"].split(":"))
