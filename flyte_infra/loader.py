"""Loading a user's module of environments: by file path or dotted name, with one-line errors."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .deploy.graph import discover
from .errors import FlyteInfraError, LoadError, ModuleExitError, one_line
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
    module_file: Path | None = None
    """The module's source file; its lock lives beside it (`pipeline.py` -> `pipeline.lock.toml`)."""

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
    _check_module_name(reference)
    module = _import(reference)
    defined = [value for value in vars(module).values() if isinstance(value, TaskEnvironment)]
    if not defined:
        raise LoadError(f"module '{one_line(reference)}' defines no TaskEnvironment", module=reference)
    try:
        code = _code(module)
    except (OSError, ValueError) as error:
        raise LoadError(
            f"cannot collect the code of '{one_line(reference)}' for its image: {_one_line(error)}",
            module=reference,
        ) from error
    module_file = Path(module.__file__).resolve() if module.__file__ else None
    return Program(module.__name__, code, tuple(discover(defined)), module_file)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_module_name(reference: str) -> None:
    """A module's name reaches the image's Dockerfile (`ENV FLYTE_INFRA_MODULE=...`): each part must
    be an ASCII identifier, so no file name (`x\nRUN ... #.py`, `my envs.py`) can add a line or a
    word to it."""
    name = Path(reference).stem if reference.endswith(".py") else reference
    if not all(_IDENTIFIER.fullmatch(part) for part in name.split(".")):
        raise LoadError(
            f"cannot load '{one_line(reference)}': module name '{one_line(name)}' is not a dotted name of "
            "ASCII identifiers (letters, digits and '_', not starting with a digit); rename the file",
            module=reference,
        )


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
    with _stdout_to_stderr():
        return _import_quietly(reference)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what user code prints at import to stderr, from Python (`print`) and from the process
    (file descriptor 1: subprocesses, C code), so it never mixes with a command's output (`--json`)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 at all
        saved = -1
    else:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved >= 0:
            os.dup2(saved, 1)
            os.close(saved)


def _import_quietly(reference: str) -> ModuleType:
    path = Path(reference)
    use_our_flyte()
    try:
        if reference.endswith(".py"):
            if not path.is_file():
                raise LoadError(f"cannot load '{one_line(reference)}': no such file", module=reference)
            directory = str(path.resolve().parent)
            if directory in sys.path:
                sys.path.remove(directory)
            sys.path.insert(0, directory)  # first: another folder's module of that name must not win
            loaded = sys.modules.get(path.stem)
            if (
                loaded is not None
                and Path(getattr(loaded, "__file__", None) or "").resolve() != path.resolve()
            ):
                del sys.modules[path.stem]  # another file of the same name, loaded before in this process
            return importlib.import_module(path.stem)
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(reference)
    except LoadError:
        raise
    except SystemExit as error:  # sys.exit(0) too: an import that exits is never a pass
        raise ModuleExitError(
            f"cannot load '{one_line(reference)}': it called sys.exit({error.code!r:.80}) while imported"
            f"{_location(error)}; a module of environments must not exit",
            module=reference,
        ) from None
    except KeyboardInterrupt as error:
        raise ModuleExitError(
            f"cannot load '{one_line(reference)}': interrupted (KeyboardInterrupt) while imported"
            f"{_location(error)}",
            module=reference,
        ) from None
    except Exception as error:  # any failure of user code at import time becomes one line
        raise LoadError(
            f"cannot load '{one_line(reference)}': {_one_line(error)}", module=reference
        ) from error


_FLYTE_INFRA_DIR = Path(__file__).resolve().parent
_NOT_USER_CODE = ("<", str(Path(__file__).parent), sys.base_prefix, sys.prefix)


def _location(error: BaseException) -> str:
    """` (at file:line)` of the last frame of user code the error passed through, or nothing."""
    location = ""
    traceback = error.__traceback__
    while traceback is not None:
        frame_file = traceback.tb_frame.f_code.co_filename
        if not frame_file.startswith(_NOT_USER_CODE):
            location = f" (at {one_line(frame_file)}:{traceback.tb_lineno})"
        traceback = traceback.tb_next
    return location


def _one_line(error: BaseException) -> str:
    location = _location(error)
    if isinstance(error, SyntaxError):
        location = f" (at {error.filename}:{error.lineno})"
    message = str(error).splitlines()[0] if str(error) else ""
    kind = "" if isinstance(error, FlyteInfraError) else f"{type(error).__name__}: "
    return f"{kind}{message}{location}"


def _code(module: ModuleType) -> tuple[tuple[str, Path], ...]:
    """The files of the module and, followed through its `import` statements (absolute and relative,
    at module level or inside functions), of every module it imports that is the user's own: not
    from an installed distribution (editable installs aside), not the standard library, not
    flyte_infra. Only imported modules are carried, each with the `__init__.py` of the packages on
    its way: `pkg.envs` brings `pkg/__init__.py`, `pkg/envs.py` and what they import, never the rest
    of `pkg`. That covers `import helpers`, `from utils import x`, `from . import y`, namespace
    packages and `src/` layouts; a module imported only by a computed name
    (`importlib.import_module(name)`) is not seen. Each file is placed by its import name, so the
    image imports it as the program did. Lookups go through sys.path alone, not sys.modules, so the
    set does not depend on what the process imported before."""
    collector = _Collector(entry=module.__name__.split(".")[0])
    code: dict[str, Path] = {}
    pending = [module.__name__]
    while pending:
        for relative, path, name, is_package in collector.files(pending.pop()):
            if relative not in code:
                code[relative] = path
                pending += _imported_names(path, name, is_package)
    for relative in code:
        if not all(map(_IDENTIFIER.fullmatch, relative.split("/")[:-1])) or not relative.isprintable():
            raise ValueError(f"'{one_line(relative)}' is not a module path of ASCII identifiers")
    return tuple(sorted(code.items()))


_MODULE_SUFFIXES = (*importlib.machinery.SOURCE_SUFFIXES, *importlib.machinery.EXTENSION_SUFFIXES)


class _Collector:
    """Finds the files of dotted module names, each name and top-level package looked up once."""

    def __init__(self, entry: str) -> None:
        self.entry = entry
        """The top-level name of the program's module: the user's even where it is installed."""
        self.seen: set[str] = set()
        self.users: dict[str, bool] = {}

    def files(self, name: str) -> list[tuple[str, Path, str, bool]]:
        """(path below the import root, file, module name, is a package) of `name` and of each package
        on its way, when `name` is the user's and not looked up before; else none."""
        if name in self.seen:
            return []
        self.seen.add(name)
        parts = name.split(".")
        files: list[tuple[str, Path, str, bool]] = []
        locations: list[str] | None = None
        for depth in range(1, len(parts) + 1):
            dotted = ".".join(parts[:depth])
            try:
                spec = importlib.machinery.PathFinder.find_spec(dotted, locations or sys.path)
            except (ImportError, ValueError):
                spec = None
            if spec is None or (depth == 1 and not self._users(dotted, spec)):
                break
            is_package = spec.submodule_search_locations is not None
            if spec.has_location and spec.origin and spec.origin.endswith(_MODULE_SUFFIXES):
                folder = parts[:depth] if is_package else parts[: depth - 1]
                relative = "/".join([*folder, Path(spec.origin).name])
                files.append((relative, Path(spec.origin), dotted, is_package))
            if not is_package:
                break
            locations = list(spec.submodule_search_locations or [])
        return files

    def _users(self, top: str, spec: importlib.machinery.ModuleSpec) -> bool:
        if top not in self.users:
            locations = list(spec.submodule_search_locations or ([spec.origin] if spec.origin else []))
            paths = [Path(location).resolve() for location in locations]
            self.users[top] = bool(paths) and (
                not any(path.is_relative_to(_FLYTE_INFRA_DIR) for path in paths)
                if top == self.entry
                else all(map(_is_users, paths))
                and not any(path.is_relative_to(root) for path in paths for root in _installed_in(top))
            )
        return self.users[top]


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


def _imported_names(source: Path, module: str, is_package: bool) -> list[str]:
    """The dotted names `source` (module `module`) imports, relative imports made absolute; for
    `from a import b`, both `a` and `a.b` (b may be a submodule or just a name)."""
    if not source.name.endswith(tuple(importlib.machinery.SOURCE_SUFFIXES)):
        return []  # an extension module: its imports cannot be read
    try:
        tree = ast.parse(source.read_bytes(), str(source))
    except (OSError, SyntaxError, ValueError):
        return []
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                if node.level - 1 >= len(base):
                    continue  # beyond the top-level package: fails at import anyway
                parent = ".".join(base[: len(base) - node.level + 1])
                target = f"{parent}.{node.module}" if node.module else parent
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return sorted(names)


_STDLIB = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
_NOT_USERS = (*(Path(directory).resolve() for directory in _STDLIB), _FLYTE_INFRA_DIR, _OUR_FLYTE)
"""Code no image needs to carry: the standard library, and flyte_infra (the image has its own)."""


def _is_users(path: Path) -> bool:
    if {"site-packages", "dist-packages"} & set(path.parts):
        return False
    return not any(path.is_relative_to(directory) for directory in _NOT_USERS)
