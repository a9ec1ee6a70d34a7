"""Loading a user's module of environments: by file path or dotted name, with one-line errors."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .environment import TaskEnvironment
from .errors import FlyteInfraError, LoadError
from .graph import discover

__all__ = ["Program", "load_program"]


@dataclass(frozen=True)
class Program:
    """A loaded user module: its import name, the source files an image must carry, its environments."""

    module_name: str
    source_root: Path
    """The directory that goes on PYTHONPATH; `source_files` are below it."""
    source_files: tuple[Path, ...]
    environments: tuple[TaskEnvironment, ...]
    """Every environment the module defines or reaches through depends_on (names unique)."""

    def environment(self, name: str) -> TaskEnvironment:
        for environment in self.environments:
            if environment.name == name:
                return environment
        known = ", ".join(environment.name for environment in self.environments)
        raise LoadError(f"module '{self.module_name}' has no environment '{name}' (it has: {known})")


def load_program(reference: str) -> Program:
    """Import `reference` (a `.py` path or a dotted module name) and collect its environments."""
    module = _import(reference)
    defined = [value for value in vars(module).values() if isinstance(value, TaskEnvironment)]
    if not defined:
        raise LoadError(f"module '{reference}' defines no TaskEnvironment")
    source_root, source_files = _sources(module)
    return Program(module.__name__, source_root, source_files, tuple(discover(defined)))


def _import(reference: str) -> ModuleType:
    path = Path(reference)
    try:
        if reference.endswith(".py"):
            if not path.is_file():
                raise LoadError(f"cannot load '{reference}': no such file")
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
        raise LoadError(f"cannot load '{reference}': {_one_line(error)}") from None


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


def _sources(module: ModuleType) -> tuple[Path, tuple[Path, ...]]:
    """The directory to put on PYTHONPATH and the files below it that the program needs: the
    module (or its whole top-level package) and, followed through their `import` statements, the
    modules and packages beside it that they import (`import helpers`, `from utils import x`)."""
    top = sys.modules[module.__name__.split(".")[0]]
    top_file = Path(top.__file__ or "").resolve()
    if top_file.name == "__init__.py":
        root, files = top_file.parent.parent, _package_files(top_file.parent)
    else:
        root, files = top_file.parent, {top_file}
    pending = list(files)
    while pending:
        for found in _local_imports(pending.pop(), root):
            new = found - files
            files |= new
            pending.extend(new)
    return root, tuple(sorted(files))


def _package_files(directory: Path) -> set[Path]:
    return {path for path in directory.rglob("*.py") if "__pycache__" not in path.parts}


def _local_imports(source: Path, root: Path) -> list[frozenset[Path]]:
    """For each top-level name `source` imports that resolves to a file or package under `root`
    (not an installed package, not flyte_infra), the files it brings."""
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
    found = []
    for name in sorted(names - set(sys.stdlib_module_names)):
        location = _local_location(name, root)
        if location is not None:
            found.append(frozenset(_package_files(location) if location.is_dir() else {location}))
    return found


def _local_location(name: str, root: Path) -> Path | None:
    """The file, or the package directory, that `import name` loads, if it is the user's own code."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.has_location:
        return None
    origin = Path(spec.origin).resolve()
    location = origin.parent if spec.submodule_search_locations else origin
    if not location.is_relative_to(root) or location.is_relative_to(_FLYTE_INFRA_DIR):
        return None
    if {"site-packages", "dist-packages"} & set(location.parts):
        return None
    return location
