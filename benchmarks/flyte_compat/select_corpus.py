"""Select the flyte-sdk example files that a Flyte-compatible flyte-infra should load unmodified.

Rule (applied with `ast`, never by importing the files):

* the file is a `.py` file anywhere under the examples directory;
* it *defines* a TaskEnvironment: some call whose callee is `TaskEnvironment` (bare, after
  `from flyte import TaskEnvironment`) or an attribute named `TaskEnvironment` (`flyte.TaskEnvironment(...)`);
* every import statement in the file -- at any depth, so imports inside functions, `if __name__ ==
  "__main__":` blocks and `try:` count too -- is of an allowed module. No relative imports.

Allowed modules:

* set `base`: exactly `flyte` (`import flyte`, `from flyte import X`), the standard library
  (`sys.stdlib_module_names`, includes `__future__`) and `pydantic` (any submodule);
* set `extended`: `base` plus `flyte.io`, `flyte.errors`, `flyte.report` (and their submodules);
  a file lands in `extended` only if it is not in `base`, i.e. it uses at least one of them.

`--allow typing_extensions` (a dependency of pydantic, so present wherever pydantic is) adds
one file, basics/types/typeddict_optional_fields.py: 117 -> 118, the issue's figure.

`--imports toplevel` considers only module-level import statements (including those nested in
module-level `if`/`try`/`with`), to show how sensitive the count is to that choice.

Usage: python select_corpus.py [EXAMPLES_DIR] [--set base|extended|all] [--list] [--imports all|toplevel]
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_EXAMPLES = Path(os.environ.get("FLYTE_EXAMPLES", "/work/flyte-compat/examples-7e2d4231"))
"""flyte-sdk's examples/ at commit 7e2d4231 (set FLYTE_EXAMPLES to a checkout's examples/)."""
STDLIB = frozenset(sys.stdlib_module_names)
EXTRA_FLYTE = ("flyte.io", "flyte.errors", "flyte.report")


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imported_modules(tree: ast.Module, toplevel_only: bool = False) -> list[str]:
    """Every module named by an import statement; relative imports come back as '.<name>'."""
    if toplevel_only:
        nodes: list[ast.AST] = []
        stack: list[ast.AST] = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            nodes.append(node)
            stack.extend(ast.iter_child_nodes(node))
    else:
        nodes = list(ast.walk(tree))
    modules = []
    for node in nodes:
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                modules.append("." * node.level + (node.module or ""))
            else:
                modules.append(node.module or "")
    return modules


def defines_task_environment(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "TaskEnvironment":
                return True
            if isinstance(func, ast.Attribute) and func.attr == "TaskEnvironment":
                return True
    return False


def category(module: str, allow: tuple[str, ...] = ()) -> str:
    """'base' (flyte top level, stdlib, pydantic, `allow`), 'extra' (flyte.io/errors/report) or 'other'."""
    if module.startswith("."):
        return "other"
    if module == "flyte":
        return "base"
    if any(_under(module, extra) for extra in EXTRA_FLYTE):
        return "extra"
    top = module.split(".")[0]
    if top in STDLIB or top == "pydantic" or top in allow:
        return "base"
    return "other"


def classify(path: Path, toplevel_only: bool = False, allow: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """('base' | 'extended' | 'excluded' | 'no-env' | 'syntax-error', offending modules)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError):
        return "syntax-error", []
    if not defines_task_environment(tree):
        return "no-env", []
    modules = imported_modules(tree, toplevel_only)
    categories = {module: category(module, allow) for module in modules}
    others = sorted({m for m, c in categories.items() if c == "other"})
    if others:
        return "excluded", others
    if "extra" in categories.values():
        return "extended", []
    return "base", []


def select(examples: Path, toplevel_only: bool = False, allow: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for path in sorted(examples.rglob("*.py")):
        kind, _ = classify(path, toplevel_only, allow)
        groups.setdefault(kind, []).append(path)
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", nargs="?", type=Path, default=DEFAULT_EXAMPLES)
    parser.add_argument("--set", choices=["base", "extended", "all"], default="all")
    parser.add_argument("--list", action="store_true", help="print the selected paths, one a line")
    parser.add_argument("--imports", choices=["all", "toplevel"], default="all")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE",
        help="also allow this top-level module (e.g. typing_extensions, which pydantic installs)",
    )
    parser.add_argument("--why", action="store_true", help="count the modules that exclude files")
    args = parser.parse_args(argv)
    toplevel_only = args.imports == "toplevel"
    allow = tuple(args.allow)
    groups = select(args.examples, toplevel_only, allow)
    chosen = ["base", "extended"] if args.set == "all" else [args.set]
    if args.list:
        for kind in chosen:
            for path in groups.get(kind, []):
                print(path)
        return 0
    total = sum(len(paths) for paths in groups.values())
    print(f"{args.examples}: {total} .py files")
    for kind in ("base", "extended", "excluded", "no-env", "syntax-error"):
        print(f"  {kind:13s} {len(groups.get(kind, []))}")
    if args.why:
        blockers: Counter[str] = Counter()
        for path in groups.get("excluded", []):
            for module in classify(path, toplevel_only, allow)[1]:
                blockers[module.split(".")[0] if not module.startswith("flyte") else module] += 1
        for module, count in blockers.most_common(40):
            print(f"    {count:4d} {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
