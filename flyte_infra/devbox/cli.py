"""`python -m flyte_infra.devbox` (also `scripts/services.sh`): the devbox's services.

up [docker|cluster|all]      install what is missing, start it, wait until ready (idempotent)
down [docker|cluster|all]    stop what `up` started
status                       what runs, exit 1 if anything is down
verify                       build, push and run a tiny image; check the cluster
env                          shell exports pointing tools at the services
toolchain                    the Pulumi CLI and plugins (built into the cache when missing)
pythons                      a venv per other CPython here (3.11+) for the fast tests; their pythons
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from ..errors import FlyteInfraError
from .apt import ensure_packages
from .cluster import PACKAGES as CLUSTER_PACKAGES
from .cluster import PROGRAMS as CLUSTER_PROGRAMS
from .cluster import Cluster
from .docker import PACKAGES as DOCKER_PACKAGES
from .docker import DockerServices
from .layout import Layout
from .pythons import other_interpreters, venv_python
from .report import step
from .supervisor import Supervisor, devbox_lock
from .toolchain import ensure_toolchain

__all__ = ["main", "start_docker_services"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flyte_infra.devbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=[*_COMMANDS])
    parser.add_argument("scope", nargs="?", default="all", choices=["docker", "cluster", "all"])
    args = parser.parse_args(argv)
    layout = Layout.from_environment()
    try:
        return _COMMANDS[args.command](layout, args.scope)
    except FlyteInfraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _scopes(scope: str) -> tuple[bool, bool]:
    return scope in {"docker", "all"}, scope in {"cluster", "all"}


def up(layout: Layout, scope: str) -> int:
    started = time.monotonic()
    docker, cluster = _scopes(scope)
    docker_services = DockerServices(layout)
    with devbox_lock(layout):
        packages = list(DOCKER_PACKAGES) if docker else []
        if cluster:
            packages += CLUSTER_PACKAGES
        ensure_packages(packages, layout.logs / "apt.log")
        supervisor = Supervisor(layout)
        if docker and docker_services.up(supervisor):
            docker_services.verify()
        if cluster:
            Cluster(layout).up(supervisor)
    step("up", 'done; for your shell: eval "$(scripts/services.sh env)"', started)
    return 0


def start_docker_services() -> dict[str, str]:
    """Bring dockerd, the registry and the base image up, export their variables, and return them
    (for benchmarks and scripts that need real images)."""
    layout = Layout.from_environment()
    up(layout, "docker")
    variables = DockerServices(layout).environment()
    os.environ.update(variables)
    return variables


def down(layout: Layout, scope: str) -> int:
    docker, cluster = _scopes(scope)
    supervisor = Supervisor(layout)
    with devbox_lock(layout):
        names = []
        if cluster:
            names += CLUSTER_PROGRAMS
        if docker:
            names += ["registry", "dockerd"]
        for name in supervisor.stop(*names):
            step("down", f"{name} stopped")
        supervisor.shutdown_if_idle()
    return 0


def status(layout: Layout, scope: str) -> int:
    docker, cluster = _scopes(scope)
    supervisor = Supervisor(layout)
    healthy = True
    if docker:
        services = DockerServices(layout)
        for name, up_now in (("dockerd", services.dockerd_up()), ("registry", services.registry_up())):
            healthy &= up_now
            step(name, f"{'up' if up_now else 'down'} ({supervisor.state(name) or 'not supervised'})")
    if cluster:
        healthy &= Cluster(layout).status(supervisor)
    return 0 if healthy else 1


def verify(layout: Layout, scope: str) -> int:
    docker, cluster = _scopes(scope)
    if docker:
        DockerServices(layout).verify()
    if cluster:
        Cluster(layout).verify()
    return 0


def env(layout: Layout, scope: str) -> int:
    docker, cluster = _scopes(scope)
    variables = DockerServices(layout).environment() if docker else {}
    if cluster:
        variables.update(Cluster(layout).environment())
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def toolchain(layout: Layout, scope: str) -> int:
    found = ensure_toolchain(layout)
    print(f'export PATH={shlex.quote(str(found.bin_dir))}:"$PATH"')
    return 0


def pythons(layout: Layout, scope: str) -> int:
    project = Path(__file__).resolve().parents[2]
    interpreters = other_interpreters()
    if not interpreters:
        step("pythons", f"no CPython 3.11+ here besides this {sys.version.split()[0]}")
    for version, interpreter in interpreters.items():
        started = time.monotonic()
        python = venv_python(interpreter, version, project, layout)
        step("pythons", f"CPython {version}: {python}", started)
        print(python)
    return 0


_COMMANDS = {
    "up": up,
    "down": down,
    "status": status,
    "verify": verify,
    "env": env,
    "toolchain": toolchain,
    "pythons": pythons,
}
