"""Loading a user's module of environments: by file path or dotted name, with one-line errors."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .deploy.graph import discover
from .errors import FlyteInfraError, LoadError
from .model.environment import TaskEnvironment

__all__ = ["Program", "load_program"]


@dataclass(frozen=True)
class Program:
    """A loaded user module: its import name, the source files an image must carry, its environments."""

    module_name: str
    code: tuple[tuple[str, Path], ...]
    """The files an image must carry: each one's path below the image's import root (`helpers.py`,
    `utils/__init__.py`) and the file itself, sorted."""
    environments: tuple[TaskEnvironment, ...]
    """Every environment the module defines or reaches through depends_on (names unique)."""

    def environment(self, name: str) -> TaskEnvironment:
        for environment in self.environments:
            if environment.name == name:
                return environment
        known = ", ".join(environment.name for environment in self.environments)
        raise LoadError(
            f"module '{self.module_name}' has no environment '{name}' (it has: {known})",
            module=self.module_name,
        )


def load_program(reference: str) -> Program:
    """Import `reference` (a `.py` path or a dotted module name) and collect its environments."""
    module = _import(reference)
    defined = [value for value in vars(module).values() if isinstance(value, TaskEnvironment)]
    if not defined:
        raise LoadError(f"module '{reference}' defines no TaskEnvironment", module=reference)
    try:
        code = _code(module)
    except (OSError, ValueError) as error:
        raise LoadError(
            f"cannot collect the code of '{reference}' for its image: {_one_line(error)}", module=reference
        ) from error
    return Program(module.__name__, code, tuple(discover(defined)))


_OUR_FLYTE = Path(__file__).resolve().parent.parent / "flyte"
"""The `flyte` package that ships with flyte-infra: Flyte 2's API over flyte_infra."""


def use_our_flyte() -> None:
    """Make `import flyte` give flyte-infra's `flyte` in this process. When the real Flyte SDK would
    be imported instead (installed, or imported already), ours takes its place in sys.modules for
    the user's modules, with a one-line note on stderr."""
    loaded = sys.modules.get("flyte")
    if loaded is not None and _is_ours(getattr(loaded, "__file__", None)):
        return
    if loaded is None:
        spec = importlib.machinery.PathFinder.find_spec("flyte", sys.path)
        if spec is not None and _is_ours(spec.origin):
            return
    if not (_OUR_FLYTE / "__init__.py").is_file():
        return  # flyte-infra installed without its `flyte` package: the user's import decides
    other = getattr(loaded, "__file__", None) or (spec.origin if spec is not None else None)
    for name in [name for name in sys.modules if name == "flyte" or name.startswith("flyte.")]:
        del sys.modules[name]
    ours = importlib.util.spec_from_file_location(
        "flyte", _OUR_FLYTE / "__init__.py", submodule_search_locations=[str(_OUR_FLYTE)]
    )
    assert ours is not None and ours.loader is not None
    module = importlib.util.module_from_spec(ours)
    sys.modules["flyte"] = module
    ours.loader.exec_module(module)
    if other is not None:
        print(
            "note: `import flyte` gives flyte-infra's Flyte 2 API, not the Flyte SDK at "
            f"{Path(other).parent}",
            file=sys.stderr,
        )


def _is_ours(origin: str | None) -> bool:
    return origin is not None and Path(origin).resolve().parent == _OUR_FLYTE


def _import(reference: str) -> ModuleType:
    path = Path(reference)
    use_our_flyte()
    try:
        if reference.endswith(".py"):
            if not path.is_file():
                raise LoadError(f"cannot load '{reference}': no such file", module=reference)
            directory = str(path.resolve().parent)
            if directory not in sys.path:
                sys.path.insert(0, directory)
            return importlib.import_module(path.stem)
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(reference)
    except LoadError:
        raise
    except Exception as error:  # any failure of user code at import time becomes one line
        raise LoadError(f"cannot load '{reference}': {_one_line(error)}", module=reference) from error


_FLYTE_INFRA_DIR = Path(__file__).resolve().parent
_NOT_USER_CODE = ("<", str(Path(__file__).parent), sys.base_prefix, sys.prefix)


def _one_line(error: BaseException) -> str:
    location = ""
    traceback = error.__traceback__
    while traceback is not None:
        frame_file = traceback.tb_frame.f_code.co_filename
        if not frame_file.startswith(_NOT_USER_CODE):
            location = f" (at {frame_file}:{traceback.tb_lineno})"
        traceback = traceback.tb_next
    if isinstance(error, SyntaxError):
        location = f" (at {error.filename}:{error.lineno})"
    message = str(error).splitlines()[0] if str(error) else ""
    kind = "" if isinstance(error, FlyteInfraError) else f"{type(error).__name__}: "
    return f"{kind}{message}{location}"


def _code(module: ModuleType) -> tuple[tuple[str, Path], ...]:
    """The module (or its whole top-level package) and, followed through `import` statements, every
    module and package it imports that is the user's own: not from an installed distribution
    (editable installs aside), not the standard library, not flyte_infra. That covers `import
    helpers`, `from utils import x`, namespace packages and `src/` layouts. Each file is placed by
    its import name, so the image imports it as the program did. Lookups go through sys.path alone,
    not sys.modules, so the set does not depend on what the process imported before."""
    top_name = module.__name__.split(".")[0]
    top = sys.modules[top_name]
    code = dict(_files_of(top_name, getattr(top, "__path__", None), top.__file__))
    resolved = {top_name}
    pending = list(code.values())
    while pending:
        for name in _imported_names(pending.pop()):
            if name in resolved:
                continue
            resolved.add(name)
            for relative, path in _users_files(name):
                if relative not in code:
                    code[relative] = path
                    pending.append(path)
    return tuple(sorted(code.items()))


_MODULE_SUFFIXES = (*importlib.machinery.SOURCE_SUFFIXES, *importlib.machinery.EXTENSION_SUFFIXES)


def _files_of(name: str, package_dirs: Iterable[str] | None, origin: str | None) -> list[tuple[str, Path]]:
    """The source and extension-module files of module `name`, by their path below the import root.

    A package's directories are walked following symlinks (each real directory once), skipping
    hidden directories, `__pycache__` and virtual environments.
    """
    if package_dirs is None:
        return [(Path(origin).name, Path(origin))] if origin and origin.endswith(_MODULE_SUFFIXES) else []
    files = []
    for top in map(Path, package_dirs):
        inside = top.resolve()
        visited: set[Path] = set()  # real directories reached through links to outside the package
        for directory, subdirectories, names in os.walk(top, followlinks=True):
            real = Path(directory).resolve()
            if real in visited:  # a loop of links
                subdirectories[:] = []
                continue
            visited.add(real)
            subdirectories[:] = sorted(
                sub
                for sub in subdirectories
                if not sub.startswith(".")
                and sub != "__pycache__"
                and not (Path(directory) / sub / "pyvenv.cfg").exists()
                and not _link_within(Path(directory) / sub, inside)
            )
            relative_dir = Path(directory).relative_to(top)
            files += [
                (f"{name}/{(relative_dir / file).as_posix()}", Path(directory) / file)
                for file in sorted(names)
                if file.endswith(_MODULE_SUFFIXES)
            ]
    return files


def _link_within(path: Path, package: Path) -> bool:
    """A link to a directory of the same package, which the walk reaches under its own name."""
    return path.is_symlink() and path.resolve().is_relative_to(package)


def _installed_in(name: str) -> list[Path]:
    """The directories where distributions providing import name `name` are installed, editable
    installs aside (those are the user's own code)."""
    distributions = _distributions_on(tuple(sys.path)).get(name, [])
    return [
        root
        for distribution in distributions
        if not _editable(distribution) and (root := _root(distribution))
    ]


@functools.cache
def _distributions_on(path: tuple[str, ...]) -> Mapping[str, list[str]]:
    """Import name -> distributions, for one sys.path (the cache key: distributions are found along it)."""
    return importlib.metadata.packages_distributions()


def _root(distribution: str) -> Path | None:
    try:
        return Path(str(importlib.metadata.distribution(distribution).locate_file(""))).resolve()
    except (importlib.metadata.PackageNotFoundError, ValueError):  # ValueError: no name at all
        return None


def _editable(distribution: str) -> bool:
    """Whether any install of `distribution` on sys.path is the user's working tree: an editable
    install (pip's `direct_url.json`), or setuptools' `.egg-info` metadata, which `pip install -e`
    and `setup.py develop` leave in the project itself."""
    try:
        installs = list(importlib.metadata.distributions(name=distribution))
    except ValueError:
        return False
    return any(map(_is_working_tree, installs))


def _is_working_tree(install: importlib.metadata.Distribution) -> bool:
    if install.read_text("METADATA") is None and install.read_text("PKG-INFO") is not None:
        return True  # .egg-info metadata, not a wheel's .dist-info
    direct_url = install.read_text("direct_url.json")
    return bool(direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"))


def _imported_names(source: Path) -> list[str]:
    """The top-level names `source` imports absolutely (relative imports stay in its package)."""
    if not source.name.endswith(tuple(importlib.machinery.SOURCE_SUFFIXES)):
        return []  # an extension module: its imports cannot be read
    try:
        tree = ast.parse(source.read_bytes(), str(source))
    except (OSError, SyntaxError, ValueError):
        return []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return sorted(names)


def _users_files(name: str) -> list[tuple[str, Path]]:
    """The files of `import name` when it is the user's own code, else none: not in site-packages,
    the stdlib or flyte_infra, nor where a distribution providing `name` is installed."""
    try:
        spec = importlib.machinery.PathFinder.find_spec(name, sys.path)
    except (ImportError, ValueError):
        return []
    if spec is None:  # builtin, frozen, or found only by an installed package's import hook
        return []
    locations = list(spec.submodule_search_locations or ([spec.origin] if spec.origin else []))
    paths = [Path(location).resolve() for location in locations]
    if not paths or not all(map(_is_users, paths)):
        return []
    if any(path.is_relative_to(root) for path in paths for root in _installed_in(name)):
        return []
    return _files_of(name, spec.submodule_search_locations, spec.origin)


_STDLIB = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
_NOT_USERS = (*(Path(directory).resolve() for directory in _STDLIB), _FLYTE_INFRA_DIR, _OUR_FLYTE)
"""Code no image needs to carry: the standard library, and flyte_infra (the image has its own)."""


def _is_users(path: Path) -> bool:
    if {"site-packages", "dist-packages"} & set(path.parts):
        return False
    return not any(path.is_relative_to(directory) for directory in _NOT_USERS)
