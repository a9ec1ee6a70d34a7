"""Resolve lock inputs with uv: one `uv pip compile` for the versions and who needs what, a second
over the exact pins for each package's wheel (URL and SHA-256) on the images' platform.

The index is uv's (`UV_DEFAULT_INDEX`, `UV_INDEX_URL` or PyPI); only wheels are accepted
(`--no-build`), so no package's code runs while resolving, nor while an image is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import uv

from ..errors import LockError
from .lock import (
    LOCK_FORMAT,
    PLATFORM,
    Lock,
    LockedPackage,
    LockGroup,
    LockInput,
    cache_dir,
    lock_inputs,
    lock_path,
    read_lock,
    uv_version,
    write_atomically,
    write_lock,
)

if TYPE_CHECKING:
    from ..loader import Program

__all__ = [
    "OFFLINE_VARIABLE",
    "offline_mode",
    "program_lock",
    "resolve",
    "resolve_group",
    "stale_environments",
    "uv_binary",
]

OFFLINE_VARIABLE = "FLYTE_INFRA_OFFLINE"
"""Set to 1 (`flyte-infra --offline` does) to use the stored lock only, never the resolver."""


def offline_mode() -> bool:
    return os.environ.get(OFFLINE_VARIABLE, "") not in ("", "0", "false")


_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)\s*(?:#\s*via\s*(?P<via>.*))?$")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_DECORATION = re.compile("^(?:[\\s\u00d7\u2570\u2500\u25b6\u2502]|error:|cause:)+")
"""What uv puts before the lines of its error report: tree drawing and `error:` / `cause:`."""
_UNREACHABLE = re.compile(
    r"Failed to fetch|error sending request|Could not connect|dns error|tcp connect error"
)
_MENTIONED = re.compile(r"\b([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==|>=|<=|!=|~=|>|<)")


def uv_binary() -> Path:
    """The uv this flyte-infra is pinned to (its `uv` dependency)."""
    return Path(uv.find_uv_bin())


def resolve(inputs: Iterable[LockInput], previous: Lock | None = None, path: Path | None = None) -> Lock:
    """A lock with a resolution for each input, reusing `previous`'s groups that are up to date."""
    previous = previous or Lock()
    return Lock(tuple(previous.resolution(item) or resolve_group(item) for item in inputs), path)


def resolve_group(item: LockInput) -> LockGroup:
    """Resolve one input; LockError naming the environments and packages when it cannot be.

    A resolution is kept in the user's cache by what it was made from (requirements, Python and
    platform, not environment names), so `check` and `plan`, which write no lock, resolve an input
    once, and environments with identical requirements are resolved once.
    """
    ordered = sorted(item.environments, key=lambda name: (sorted(item.requirements[name]), name))
    key = _resolution_key(item, ordered)
    cached = _cached_resolution(key, item, ordered)
    if cached is not None:
        return cached
    group = _resolve_now(item)
    _store_resolution(key, group, ordered)
    return group


def _resolution_key(item: LockInput, ordered: list[str]) -> str:
    digest = hashlib.sha256(f"{LOCK_FORMAT}\n{item.python}\n{PLATFORM}\n{uv_version()}\n".encode())
    for name in ordered:
        digest.update(json.dumps(sorted(item.requirements[name])).encode() + b"\n")
    return digest.hexdigest()


def _cache_file(key: str) -> Path:
    return cache_dir("resolutions") / f"{key}.json"


def _cached_resolution(key: str, item: LockInput, ordered: list[str]) -> LockGroup | None:
    try:
        document = json.loads(_cache_file(key).read_text())
        packages = {entry["name"]: LockedPackage(**entry) for entry in document["packages"]}
        closures = {name: tuple(closure) for name, closure in zip(ordered, document["closures"], strict=True)}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return LockGroup(item.python, item.input_hash, packages, closures)


def _store_resolution(key: str, group: LockGroup, ordered: list[str]) -> None:
    path = _cache_file(key)
    document = {
        "packages": [dataclasses.asdict(package) for _, package in sorted(group.packages.items())],
        "closures": [list(group.closures[name]) for name in ordered],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(document))
    except OSError:
        pass  # a cache that cannot be written only costs time


def _resolve_now(item: LockInput) -> LockGroup:
    with tempfile.TemporaryDirectory(prefix="flyte-infra-lock-") as work:
        folder = Path(work)
        files = {}
        for index, name in enumerate(item.environments):
            files[f"env{index}.in"] = name
            (folder / f"env{index}.in").write_text("\n".join(item.requirements[name]) + "\n")
        _compile(item, folder, [*files, "--annotation-style", "line", "--no-header", "-o", "pins.in"])
        annotated = (folder / "pins.in").read_text()
        pins, via = _parse_pins(annotated, files)
        (folder / "pins.txt").write_text("\n".join(f"{n}=={v}" for n, v in pins.items()) + "\n")
        _compile(item, folder, ["pins.txt", "--no-deps", "--output-file", "pylock.toml"])
        pylock = (folder / "pylock.toml").read_text()
    packages = _wheels(pylock, item)
    closures = {name: _closure(name, via) for name in item.environments}
    return LockGroup(item.python, item.input_hash, packages, closures)


def _compile(item: LockInput, folder: Path, arguments: list[str]) -> str:
    command = [
        str(uv_binary()),
        "pip",
        "compile",
        "--quiet",
        "--no-build",
        "--python-version",
        item.python,
        "--python-platform",
        PLATFORM,
        *arguments,
    ]
    environment = {**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1"}
    try:
        completed = subprocess.run(
            command, cwd=folder, capture_output=True, text=True, timeout=600, env=environment
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LockError(f"cannot run uv to lock {_names(item.environments)}: {error}") from error
    if completed.returncode != 0:
        if _UNREACHABLE.search(completed.stderr):
            raise LockError(
                f"{_names(item.environments)}: packages: cannot reach the package index "
                f"({_reason(completed.stderr)}); "
                "fix: check the network and the index (UV_DEFAULT_INDEX), or use --offline with a "
                "committed lock",
                environments=item.environments,
            )
        raise _conflict(item, completed.stderr)
    return completed.stdout


def _parse_pins(text: str, files: dict[str, str]) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Pins, and for each package what requires it: environments (by their input file) and packages."""
    pins: dict[str, str] = {}
    via: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if not match:
            continue
        name = match["name"]
        pins[name] = match["version"]
        sources = set()
        for part in (match["via"] or "").split(","):
            part = part.strip()
            if part.startswith("-r "):
                sources.add("env:" + files.get(part[3:].strip(), part[3:].strip()))
            elif part:
                sources.add(part)
        via[name] = sources
    return pins, via


def _closure(environment: str, via: dict[str, set[str]]) -> tuple[str, ...]:
    """The packages `environment` needs: those its input names and, transitively, what they need."""
    needs = {name for name, sources in via.items() if f"env:{environment}" in sources}
    changed = True
    while changed:
        changed = False
        for name, sources in via.items():
            if name not in needs and sources & needs:
                needs.add(name)
                changed = True
    return tuple(sorted(needs))


def _wheels(pylock: str, item: LockInput) -> dict[str, LockedPackage]:
    document = tomllib.loads(pylock)
    packages = {}
    for entry in document.get("packages", []):
        wheels = entry.get("wheels") or []
        if not wheels:
            raise LockError(
                f"{_names(item.environments)}: packages: {entry['name']}=={entry['version']} has no wheel "
                "for "
                f"CPython {item.python} on {PLATFORM}; publish a wheel of it to the index, or pin a version "
                "that has one",
                environments=item.environments,
                packages=[entry["name"]],
            )
        wheel = wheels[0]
        packages[entry["name"]] = LockedPackage(
            entry["name"], entry["version"], wheel["url"], wheel["hashes"]["sha256"], wheel.get("size")
        )
    return packages


def _conflict(item: LockInput, stderr: str) -> LockError:
    """The resolver's reason in one line, naming the environments and requirements it is about."""
    reason = _reason(stderr).replace("you require", "the environments require")
    reason = reason.replace("your requirements", "they")
    mentioned = {name.lower().replace("_", "-") for name in _MENTIONED.findall(reason)}
    culprits = [
        (env, line)
        for env in item.environments
        for line in item.requirements[env]
        if _requirement_name(line) in mentioned
    ]
    involved = list(dict.fromkeys(env for env, _ in culprits)) or list(item.environments)
    named = ", ".join(f"{line} in '{env}'" for env, line in culprits[:6])
    if "no wheels" in reason or "no versions" in reason or "not found in the package registry" in reason:
        fix = f"require a version that has a wheel for CPython {item.python} on {PLATFORM}, or publish one"
    else:
        fix = "align the versions, or set shared_lock=False on the environment that must differ"
    return LockError(
        f"{_names(involved)}: packages cannot be resolved"
        + (f" ({named})" if named else "")
        + f": {reason}; "
        f"fix: {fix}",
        environments=involved,
        packages=sorted({_requirement_name(line) for _, line in culprits}),
    )


def _reason(stderr: str, limit: int = 400) -> str:
    """uv's report on one line, without its decoration and hints; its first and last sentences when
    it is long (the chain between them can run to pages; the first names the packages, the last the
    outcome)."""
    lines = [_DECORATION.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.lower().startswith(("hint:", "no solution found"))]
    reason = " ".join(lines) or "uv failed without a message"
    if len(reason) <= limit:
        return reason
    sentences = [sentence for sentence in re.split(r"(?<=\.)\s+", reason) if sentence]
    short = f"{sentences[0]} ... {sentences[-1]}" if len(sentences) > 1 else reason
    return short if len(short) <= limit else short[: limit - 3] + "..."


def _requirement_name(line: str) -> str:
    match = _REQUIREMENT_NAME.match(line)
    return match[1].lower().replace("_", "-") if match else ""


def _names(environments: Iterable[str]) -> str:
    names = list(environments)
    label = "TaskEnvironment" if len(names) == 1 else "TaskEnvironments"
    return f"{label} " + ", ".join(f"'{name}'" for name in names)


def _stored(program: Program) -> tuple[Path | None, Lock, list[LockInput], list[LockInput]]:
    """The lock file of `program`, what it holds, the inputs the program needs, and those it lacks."""
    path = lock_path(program.module_file) if program.module_file is not None else None
    stored = read_lock(path) if path is not None else Lock()
    inputs = lock_inputs(program.environments)
    return path, stored, inputs, stored.stale(inputs)


def stale_environments(program: Program) -> list[str]:
    """The environments of `program` its stored lock has no up-to-date resolution for (sorted)."""
    return _environments(_stored(program)[3])


def _environments(inputs: Iterable[LockInput]) -> list[str]:
    return sorted(name for item in inputs for name in item.environments)


def program_lock(program: Program, *, offline: bool = False, write: bool = True) -> Lock:
    """The lock of `program`: the stored one where it is up to date, else resolved now (and, with
    `write`, stored beside the module). Offline, a missing or stale lock is a LockError."""
    path, stored, inputs, stale = _stored(program)
    if not stale:
        current = stored.restricted_to(inputs)
        if write and path is not None and len(current.groups) < len(stored.groups):
            write_lock(current, path)  # resolutions of removed environments go
        return current
    if offline:
        names = _environments(stale)
        where = path.name if path is not None else "no lock file"
        raise LockError(
            f"{_names(names)}: packages: the lock ({where}) is missing or out of date for them, and "
            "resolving is off (offline); run `flyte-infra lock` and commit the file",
            environments=names,
        )
    lock = resolve(inputs, stored, path)
    if write and path is not None:
        write_lock(lock, path)
    return lock
