"""The lock: one resolution per connected DAG of environments, and each environment's closure in it.

Environments joined by `depends_on` (in either direction) share one resolution: one version of each
package for all of them, so a parent and the children it calls run the same numpy. An environment
with `shared_lock=False` is resolved on its own. Environments of one DAG whose images run different
Pythons are resolved per Python (wheels differ).

The lock file is TOML beside the program's module (`pipeline.py` -> `pipeline.lock.toml`), written
by `flyte-infra lock` for review in a pull request; every package is pinned to one wheel by URL and
SHA-256 for the images' platform. It is pure data here: resolution is in `resolve`, downloads in
`wheels`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
from packaging.version import InvalidVersion, Version

from ..deploy.graph import discover
from ..deploy.packages import RUNTIME_REQUIREMENTS, image_python
from ..errors import LockError, one_line

if TYPE_CHECKING:
    from ..model.environment import TaskEnvironment

__all__ = [
    "LOCK_FORMAT",
    "PLATFORM",
    "Layer",
    "Lock",
    "LockGroup",
    "LockInput",
    "LockedPackage",
    "cache_dir",
    "lock_inputs",
    "lock_path",
    "read_lock",
    "uv_version",
    "write_atomically",
    "write_lock",
]

PLATFORM = "x86_64-manylinux_2_28"
"""The platform wheels are chosen for: Linux on x86_64 with glibc 2.28 or newer (Debian 10+,
Ubuntu 20.04+, the python:3.x images). Kubernetes nodes here are amd64."""

LOCK_FORMAT = 1


def cache_dir(kind: str = "") -> Path:
    """`$XDG_CACHE_HOME/flyte-infra/<kind>` (default `~/.cache/...`): where locked wheels,
    resolutions and the devbox's builds are kept between runs; the root without `kind`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flyte-infra" / kind


@cache
def uv_version() -> str:
    """The version of the uv that resolves and installs (Dockerfiles name it: a new uv, new tags)."""
    return importlib.metadata.version("uv")


@dataclass(frozen=True)
class LockedPackage:
    """One pinned package: the wheel an image installs, by URL and SHA-256."""

    name: str
    version: str
    url: str
    sha256: str
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("#", 1)[0]

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Layer:
    """Packages installed together into one image layer, shared by the environments in `users`."""

    users: tuple[str, ...]
    packages: tuple[LockedPackage, ...]

    @property
    def key(self) -> str:
        """A name from the layer's content alone (its pins and wheels), so the layer's directory, and
        with it the layer's bytes, do not depend on which image or position it is built in."""
        digest = hashlib.sha256("\n".join(f"{p.pin} {p.sha256}" for p in self.packages).encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LockInput:
    """What one resolution is made from: each environment's requirements, for one Python."""

    python: str
    requirements: Mapping[str, tuple[str, ...]]
    """Environment name -> its packages plus the worker runtime's requirements."""

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(sorted(self.requirements))

    @property
    def input_hash(self) -> str:
        """Changes exactly when the resolution's input does (a lock group with another is stale)."""
        digest = hashlib.sha256(f"{LOCK_FORMAT}\n{self.python}\n{PLATFORM}\n".encode())
        for name in self.environments:
            digest.update(
                f"[{name}]\n".encode() + "\n".join(sorted(self.requirements[name])).encode() + b"\n"
            )
        return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class LockGroup:
    """One resolution: its packages and which of them each environment needs."""

    python: str
    input_hash: str
    packages: Mapping[str, LockedPackage]
    closures: Mapping[str, tuple[str, ...]]
    """Environment name -> the names of the packages it installs (its requirements and theirs)."""

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(sorted(self.closures))

    @cached_property
    def _users(self) -> dict[str, tuple[str, ...]]:
        """Each package -> the environments whose closures hold it, sorted."""
        users: dict[str, list[str]] = {}
        for environment in sorted(self.closures):
            for name in self.closures[environment]:
                users.setdefault(name, []).append(environment)
        return {name: tuple(names) for name, names in users.items()}

    def layers(self, environment: str) -> list[Layer]:
        """The package layers of `environment`'s image, most shared first.

        A package goes into the layer of the set of environments whose closures hold it, so a layer
        is built once and stored once for all of them; a chain's images store every package once.
        Ties go by the sets' sorted names, so every image orders its layers the same way.
        """
        by_users: dict[tuple[str, ...], list[LockedPackage]] = {}
        for name in self.closures[environment]:
            by_users.setdefault(self._users[name], []).append(self.packages[name])
        ordered = sorted(by_users, key=lambda users: (-len(users), users))
        return [Layer(users, tuple(sorted(by_users[users], key=lambda p: p.name))) for users in ordered]


@dataclass(frozen=True)
class Lock:
    """Every resolution of a program, by the environments it covers."""

    groups: tuple[LockGroup, ...] = ()
    path: Path | None = field(default=None, compare=False)

    def group(self, environment: str) -> LockGroup:
        for group in self.groups:
            if environment in group.closures:
                return group
        raise LockError(f"TaskEnvironment '{environment}': packages: not in the lock; run `flyte-infra lock`")

    def closure(self, environment: str) -> list[LockedPackage]:
        group = self.group(environment)
        return [group.packages[name] for name in group.closures[environment]]

    def resolution(self, item: LockInput) -> LockGroup | None:
        """The group that resolved exactly `item` (its input and environments), if any."""
        for group in self.groups:
            if group.input_hash == item.input_hash and group.environments == item.environments:
                return group
        return None

    def stale(self, inputs: Iterable[LockInput]) -> list[LockInput]:
        """The inputs this lock has no up-to-date resolution for."""
        return [item for item in inputs if self.resolution(item) is None]

    def restricted_to(self, inputs: Iterable[LockInput]) -> Lock:
        """The groups `inputs` still need (resolutions of removed environments dropped)."""
        wanted = {item.input_hash for item in inputs}
        return Lock(tuple(group for group in self.groups if group.input_hash in wanted), self.path)


def lock_inputs(environments: Iterable[TaskEnvironment]) -> list[LockInput]:
    """One input per connected DAG and Python; one per environment that opts out of sharing.

    `environments` and every environment they reach through depends_on are covered.
    """
    envs = {env.name: env for env in discover(environments)}
    parent = {name: name for name in envs}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for env in envs.values():
        for child in env.depends_on:
            if env.shared_lock and child.shared_lock and child.name in envs:
                parent[root(env.name)] = root(child.name)
    groups: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
    for name in sorted(envs):
        env = envs[name]
        python = ".".join(image_python(env.image).split(".")[:2])
        requirements = tuple(dict.fromkeys([*env.packages, *RUNTIME_REQUIREMENTS]))
        groups.setdefault((root(name), python), {})[name] = requirements
    return [LockInput(python, requirements) for (_, python), requirements in sorted(groups.items())]


def lock_path(module_file: Path) -> Path:
    """Where a program's lock lives: beside its module, `pipeline.py` -> `pipeline.lock.toml`
    (`pkg/__init__.py` -> `pkg/__init__.lock.toml`)."""
    return module_file.with_name(module_file.stem + ".lock.toml")


_HEADER = (
    "# flyte-infra lock: one resolution per connected DAG of environments, for {platform}.\n"
    "# Written by `flyte-infra lock`; commit it. Every image installs exactly these wheels.\n"
)


def write_lock(lock: Lock, path: Path) -> None:
    """Write `lock` as TOML (sorted, so a change reads as a small diff)."""
    document: dict[str, Any] = {
        "version": LOCK_FORMAT,
        "platform": PLATFORM,
        "groups": [
            {
                "python": group.python,
                "input-hash": group.input_hash,
                "environments": {name: list(group.closures[name]) for name in group.environments},
                "packages": [
                    {
                        "name": package.name,
                        "version": package.version,
                        "url": package.url,
                        "sha256": package.sha256,
                        **({"size": package.size} if package.size is not None else {}),
                    }
                    for _, package in sorted(group.packages.items())
                ],
            }
            for group in sorted(lock.groups, key=lambda group: group.environments)
        ],
    }
    write_atomically(path, _HEADER.format(platform=PLATFORM) + tomli_w.dumps(document))


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file of this process, so a reader never sees half."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_URL = re.compile(r"https?://[!-~]+")


def _checked_package(entry: dict[str, Any], path: Path) -> LockedPackage:
    """A package entry of a lock file, each field checked: they reach Dockerfiles and file names."""
    package = LockedPackage(entry["name"], entry["version"], entry["url"], entry["sha256"], entry.get("size"))
    problem = None
    if not isinstance(package.name, str) or not _NAME.fullmatch(package.name):
        problem = f"package name {package.name!r:.80} is not a normalized package name"
    elif not isinstance(package.version, str) or not _is_version(package.version):
        problem = f"{package.name}: version {package.version!r:.80} is not a PEP 440 version"
    elif (
        not isinstance(package.url, str)
        or not _URL.fullmatch(package.url)
        or not package.filename.endswith(".whl")
    ):
        problem = f"{package.name}: url {package.url!r:.120} is not an http(s) URL of a wheel"
    elif not isinstance(package.sha256, str) or not _SHA256.fullmatch(package.sha256):
        problem = f"{package.name}: sha256 {package.sha256!r:.80} is not 64 lowercase hex digits"
    if problem:
        raise LockError(
            f"lock file {path.name}: {problem}; run `flyte-infra lock` to rewrite it",
            packages=[str(package.name)],
        )
    return package


def _is_version(text: str) -> bool:
    if not text.isprintable() or text != text.strip():
        return False
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def read_lock(path: Path) -> Lock:
    """The lock at `path`; an empty lock when there is no file; LockError when it cannot be read."""
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return Lock(path=path)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise LockError(f"lock file {path}: cannot be read ({error}); run `flyte-infra lock`") from error
    if document.get("version") != LOCK_FORMAT or document.get("platform") != PLATFORM:
        return Lock(path=path)  # another format or platform: every group is stale
    try:
        groups = tuple(
            LockGroup(
                python=group["python"],
                input_hash=group["input-hash"],
                packages={package["name"]: _checked_package(package, path) for package in group["packages"]},
                closures={name: tuple(closure) for name, closure in group["environments"].items()},
            )
            for group in document.get("groups", [])
        )
        for group in groups:
            for environment, closure in group.closures.items():
                unknown = sorted(set(closure) - set(group.packages))
                if unknown:
                    raise LockError(
                        f"lock file {path.name}: environment '{one_line(environment)[:60]}' lists "
                        f"{one_line(', '.join(unknown))[:120]}, which the lock does not pin; run "
                        "`flyte-infra lock` to rewrite it",
                        environments=[environment],
                    )
    except (KeyError, TypeError, AttributeError) as error:
        raise LockError(f"lock file {path}: malformed ({error!r}); run `flyte-infra lock`") from error
    return Lock(groups, path)
