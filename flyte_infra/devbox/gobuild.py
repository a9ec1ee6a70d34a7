"""Go binaries built once into the user's cache dir, keyed on everything that decides them.

A recipe names its binaries, how its module is laid out (a wrapper module that requires an
upstream one, or a copy of a source folder), and the inputs that decide the result. The binaries
land in `<cache>/go/<recipe>/bin` beside a stamp of those inputs: when the stamp matches, nothing is
built, so a second run takes milliseconds. Go's own module and build caches (`go env GOMODCACHE`,
`GOCACHE`) make a rebuild after a recipe change incremental.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ServiceError
from .report import step

__all__ = ["GoBinary", "GoRecipe", "build", "go_module_dir", "tree_digest"]


@dataclass(frozen=True)
class GoBinary:
    """One `go build` of `package` into `name`, with `-ldflags "-s -w <ldflags>"`."""

    name: str
    package: str
    ldflags: str = ""


@dataclass(frozen=True)
class GoRecipe:
    """How to build a set of binaries from one Go module.

    Args:
        key: the cache folder's name, with the version (`pulumi-cli-v3.259.0`).
        binaries: what to build, in order.
        prepare: writes the module into an empty work folder (go.mod edits, copies, patches).
        inputs: everything else that decides the binaries (source digests, versions).
        extras: run after the builds with (work folder, bin folder), to place other files.
        cgo: `CGO_ENABLED` for the builds; None keeps Go's default.
        subdir: the module's folder inside the work folder, where `go build` runs.
    """

    key: str
    binaries: tuple[GoBinary, ...]
    prepare: Callable[[Path], None]
    inputs: tuple[str, ...] = ()
    extras: Callable[[Path, Path], None] | None = None
    cgo: bool | None = None
    subdir: str = ""
    _stamp_version: int = field(default=1, repr=False)

    def stamp(self) -> str:
        recipe = {
            "key": self.key,
            "binaries": [(b.name, b.package, b.ldflags) for b in self.binaries],
            "inputs": self.inputs,
            "cgo": self.cgo,
            "subdir": self.subdir,
            "go": go_version(),
            "version": self._stamp_version,
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def build(recipe: GoRecipe, cache: Path) -> Path:
    """The folder holding the recipe's binaries, built now unless the cache has them."""
    started = time.monotonic()
    home = cache / "go" / recipe.key
    bin_dir = home / "bin"
    stamp_file = home / "stamp"
    stamp = recipe.stamp()
    names = ", ".join(binary.name for binary in recipe.binaries)
    complete = all((bin_dir / binary.name).is_file() for binary in recipe.binaries)
    if complete and stamp_file.is_file() and stamp_file.read_text() == stamp:
        step("go", f"{recipe.key}: cached in {bin_dir} ({names})", started)
        return bin_dir
    step("go", f"{recipe.key}: building {names} into {bin_dir} (cold: minutes)")
    work = home / "src"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stamp_file.unlink(missing_ok=True)
    recipe.prepare(work)
    staging = home / "bin.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    log = home / "build.log"
    for binary in recipe.binaries:
        begun = time.monotonic()
        flags = f"-s -w {binary.ldflags}".strip()
        go(
            ["build", "-trimpath", "-o", str(staging / binary.name), "-ldflags", flags, binary.package],
            cwd=work / recipe.subdir,
            log=log,
            cgo=recipe.cgo,
        )
        step("go", f"{recipe.key}: built {binary.name}", begun)
    if recipe.extras is not None:
        recipe.extras(work, staging)
    shutil.rmtree(bin_dir, ignore_errors=True)
    staging.rename(bin_dir)
    shutil.rmtree(work, ignore_errors=True)
    stamp_file.write_text(stamp)
    step("go", f"{recipe.key}: done", started)
    return bin_dir


def go(
    args: Sequence[str],
    *,
    cwd: Path,
    log: Path | None = None,
    cgo: bool | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run `go ARGS` in `cwd` (module mode, no vendoring); its output is appended to `log`."""
    if shutil.which("go") is None:
        raise ServiceError("go", "the Go toolchain is not installed (it is on every machine of this kind)")
    variables = {**os.environ, "GOFLAGS": "-mod=mod", **(env or {})}
    if cgo is not None:
        variables["CGO_ENABLED"] = "1" if cgo else "0"
    completed = subprocess.run(["go", *args], cwd=cwd, env=variables, capture_output=True, text=True)
    if log is not None:
        with log.open("a") as out:
            out.write(f"$ go {' '.join(args)}  (in {cwd})\n{completed.stdout}{completed.stderr}\n")
    if completed.returncode != 0:
        last = [line for line in completed.stderr.splitlines() if line.strip()][-3:]
        raise ServiceError("go", f"go {args[0]} in {cwd} failed: {' | '.join(last)}", log=log)
    return completed.stdout


def go_version() -> str:
    completed = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True)
    return completed.stdout.strip()


def go_module_dir(module: str, version: str, cwd: Path) -> Path:
    """The extracted folder of `module@version` in Go's module cache (downloaded if missing)."""
    info = json.loads(go(["mod", "download", "-json", f"{module}@{version}"], cwd=cwd))
    return Path(info["Dir"])


def wrapper_module(
    path: str, requires: Sequence[str], replaces: Sequence[str] = (), imports: Sequence[str] = ()
) -> Callable[[Path], None]:
    """A `prepare` that writes a module requiring `requires` (`mod@version`), with `replaces`
    (`old=new@version`), and a tools.go importing the `imports` packages, then tidies it."""

    def prepare(work: Path) -> None:
        go(["mod", "init", path], cwd=work)
        edits = [f"-require={item}" for item in requires] + [f"-replace={item}" for item in replaces]
        go(["mod", "edit", *edits], cwd=work)
        lines = "\n".join(f'\t_ "{package}"' for package in imports)
        (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{lines}\n)\n")
        go(["mod", "tidy"], cwd=work)  # tidy reads files of every build tag, tools.go too

    return prepare


def copy_tree(source: Path, target: Path) -> None:
    """Copy a source folder (read-only in CI) so that it can be edited and built."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    for folder, _, files in os.walk(target):
        os.chmod(folder, os.stat(folder).st_mode | stat.S_IWUSR)
        for name in files:
            file = Path(folder) / name
            file.chmod(file.stat().st_mode | stat.S_IWUSR)


def tree_digest(root: Path) -> str:
    """A digest of every file's path and content under `root`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
