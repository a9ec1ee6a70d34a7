"""Debian packages the devbox needs, installed with apt-get when missing (as root)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import ServiceError
from .report import step

__all__ = ["ensure_packages", "mirrors"]

_POLICY = Path("/usr/sbin/policy-rc.d")


def ensure_packages(packages: Sequence[str], log: Path) -> None:
    """Install the packages of `packages` that dpkg does not list as installed.

    Package scripts may not start the system's own services (docker, containerd, etcd, the
    registry): a `policy-rc.d` that denies every start is in place while apt runs.
    """
    started = time.monotonic()
    missing = [package for package in packages if not _installed(package)]
    if not missing:
        step("packages", "all present", started)
        return
    if os.geteuid() != 0:
        raise ServiceError("apt", f"missing Debian packages {' '.join(missing)}; run as root to install them")
    step("packages", f"installing {' '.join(missing)} (log: {log})")
    made_policy = not _POLICY.exists()
    if made_policy:
        _POLICY.write_text("#!/bin/sh\nexit 101\n")
        _POLICY.chmod(0o755)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for command in (
                ["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", *missing],
            ):
                if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=environment).returncode:
                    raise ServiceError("apt", f"{' '.join(command[:2])} failed", log=log)
    finally:
        if made_policy:
            _POLICY.unlink(missing_ok=True)
    step("packages", f"installed {' '.join(missing)}", started)


def _installed(package: str) -> bool:
    completed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return completed.stdout.endswith("install ok installed")


def mirrors(suite: str) -> tuple[str, str]:
    """The Debian mirror apt uses for `suite`, and the one for `suite-security` (apt's own view
    of its sources, so deb822 and one-line files alike); Debian's defaults when apt names none."""
    listing = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(RELEASE) $(SITE)"], capture_output=True, text=True
    ).stdout
    sites: dict[str, str] = {}
    for line in listing.splitlines():
        release, _, site = line.partition(" ")
        sites.setdefault(release, site.rstrip("/"))
    main = os.environ.get("FLYTE_INFRA_DEBIAN_MIRROR") or sites.get(suite, "http://deb.debian.org/debian")
    security = sites.get(f"{suite}-security", "http://deb.debian.org/debian-security")
    return main, security
