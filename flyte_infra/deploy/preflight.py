"""Preflight: every check that must pass before anything is deployed, reported together."""

from __future__ import annotations

import dis
import functools
import sys
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CycleError, PreflightError, TaskArgumentError
from ..model.environment import TaskEnvironment
from ..model.task import Task
from ..runtime.codec import check_hints
from .graph import Edges, EnvironmentGraph, discover_edges, ordered, reachable
from .packages import CoverageProblem, PackageSet, missing_coverage, package_set, runtime_conflicts

__all__ = ["Finding", "PreflightReport", "called_tasks", "preflight"]

Calls = Mapping["Task[..., Any]", list["Task[..., Any]"]]
"""Each task -> the tasks its body calls."""


@dataclass(frozen=True)
class Finding:
    """One problem: which environment, what (a package, a task, depends_on), why, and the fix."""

    severity: str  # "error" | "warning"
    environment: str
    subject: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.environment}: {self.subject}: {self.message}; fix: {self.fix}"


@dataclass
class PreflightReport:
    """All findings, and the graph when the environments form one."""

    graph: EnvironmentGraph | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> EnvironmentGraph:
        """The graph, or PreflightError carrying every error."""
        if self.errors or self.graph is None:
            raise PreflightError(self.errors)
        return self.graph


def preflight(roots: Iterable[TaskEnvironment]) -> PreflightReport:
    """Check the environments reachable from `roots`: the graph, package coverage, cross-env calls.

    Duplicate names raise DuplicateEnvironmentError at once (nothing else can be named reliably).
    """
    environments, edges = discover_edges(roots)
    findings: list[Finding] = []
    graph: EnvironmentGraph | None
    try:
        graph = ordered(environments, edges)
    except CycleError as cycle:
        graph = None
        findings.append(
            Finding("error", cycle.cycle[0], "depends_on", str(cycle), "remove one edge of the cycle")
        )
    package_sets: dict[str, PackageSet] = {}
    calls: dict[Task[..., Any], list[Task[..., Any]]] = {}
    for name, environment in environments.items():
        if environment.unresolved_image is not None:
            findings.append(
                Finding(
                    "error",
                    name,
                    "image",
                    f"flyte.Image.from_ref_name('{environment.unresolved_image}') names no image: Flyte's "
                    "config ($FLYTECTL_CONFIG, .flyte/config.yaml, ~/.flyte/config.yaml) has no such "
                    "`images:` entry",
                    f"add images: {{{environment.unresolved_image}: <image uri>}} to the config, or use "
                    "flyte.Image.from_base(uri)",
                )
            )
        packages = package_sets[name] = environment.package_set
        findings.extend(_runtime_findings(name, runtime_conflicts(packages)))
        for task in environment.tasks.values():
            calls[task] = called_tasks(task)
    findings.extend(
        _package_findings(environments, package_sets, edges, None if graph is None else graph.order)
    )
    findings.extend(_call_findings(calls, edges))
    findings.extend(_hint_findings(calls))
    return PreflightReport(graph, findings)


def _hint_findings(calls: Calls) -> Iterator[Finding]:
    """Tasks whose arguments or result could not travel between workers as JSON.

    An error, unless the task is seen called by tasks of its own environment and by no other
    environment's: an internal step (taking an `nn.Module`, say) is a plain call in its worker.
    Such a task is a warning, since a client or a call the bytecode scan misses still could not
    reach it.
    """
    internal: set[Task[..., Any]] = set()
    external: set[Task[..., Any]] = set()
    for caller, callees in calls.items():
        for callee in callees:
            (internal if callee.environment is caller.environment else external).add(callee)
    for task in calls:  # every task of every environment
        try:
            check_hints(task)
        except TaskArgumentError as error:
            problem = f"{error.where}: {error.problem}" if error.where else error.problem
            only_internal = task in internal and task not in external
            note = "; it works only when called by its own environment's tasks"
            yield Finding(
                "warning" if only_internal else "error",
                task.environment.name,
                f"task '{task.name}'",
                problem + (note if only_internal else ""),
                "use hints pydantic can validate from JSON (int, str, list[float], dataclasses, ...)",
            )


Coverage = list[CoverageProblem] | ValueError
"""What a parent lacks of a child's packages (empty: nothing), or why the child's packages
contradict each other on the parent's Python."""


def _package_findings(
    environments: Mapping[str, TaskEnvironment],
    package_sets: Mapping[str, PackageSet],
    edges: Edges,
    order: Sequence[str] | None,
) -> Iterator[Finding]:
    """Each environment's packages must cover those of every environment it reaches through
    depends_on (the transitive closure), so one pass names everything each one must add.

    Environments with the same package lines and Python need the same packages, so a parent is
    compared with each distinct package list it reaches, and each pair of lists is compared once.
    Only a parent that lacks something walks its closure, direct dependencies in depends_on order
    then the others by name, to name each missing package once, for the first environment that
    needs it. `order` (dependencies first) is the graph's deploy order, None when depends_on has
    a cycle.
    """
    numbers: dict[tuple[tuple[str, ...], str], int] = {}  # each distinct (lines, Python) -> a number
    lists: dict[str, int] = {}  # each environment -> the number of its package list
    having: list[str] = []  # each number -> an environment with that list
    for name in edges:
        lines = (tuple(environments[name].packages), package_sets[name].python)
        number = lists[name] = numbers.setdefault(lines, len(numbers))
        if number == len(having):  # a list not seen before
            having.append(name)
    reached = _lists_reached(edges, lists, order)
    coverage: dict[tuple[int, int], Coverage] = {}
    covered: dict[int, set[int]] = {}  # each parent list -> the child lists it covers

    def compare(parent: int, child: int) -> Coverage:
        if (parent, child) not in coverage:
            have, need = package_sets[having[parent]], package_sets[having[child]]
            if need.values <= have.values:  # every child line verbatim in the parent: covered
                coverage[parent, child] = []
            elif need.python == have.python:
                coverage[parent, child] = missing_coverage(have, need)
            else:  # the child's packages, as the parent's image installs them
                try:
                    reparsed = package_set(environments[having[child]].packages, have.python)
                except ValueError as error:
                    coverage[parent, child] = error
                else:
                    coverage[parent, child] = missing_coverage(have, reparsed)
        return coverage[parent, child]

    for parent, direct in edges.items():
        own = lists[parent]
        fine = covered.setdefault(own, set())
        lacking = False
        for listed in reached[parent] - fine:
            if compare(own, listed):  # problems, or a contradiction
                lacking = True
            else:
                fine.add(listed)
        if not lacking:
            continue
        have = package_sets[parent]
        reported: set[str] = set()
        indirect = sorted(reachable(parent, edges) - set(direct) - {parent})
        for child in [*direct, *indirect]:
            result = compare(own, lists[child])
            if isinstance(result, ValueError):
                yield _contradiction(parent, child, have.python, result)
                continue
            how = "depends on" if child in direct else "depends (through depends_on) on"
            for problem in result:
                if problem.package in reported:  # already named for a nearer environment
                    continue
                reported.add(problem.package)
                yield Finding(
                    problem.severity,
                    parent,
                    f"package '{problem.package}'",
                    f"{how} '{child}', whose packages it must include: {problem.problem}",
                    f"in '{parent}' packages, {problem.fix}",
                )


def _lists_reached(
    edges: Edges, lists: Mapping[str, int], order: Sequence[str] | None
) -> dict[str, set[int]]:
    """For each environment, the package lists (`lists` numbers them) of the environments it
    reaches through depends_on. With `order` (dependencies first) each environment's set is the
    union of its dependencies' sets and lists; without it (a cycle) each environment walks its
    closure."""
    reached: dict[str, set[int]] = {}
    if order is None:
        for parent in edges:
            reached[parent] = {lists[name] for name in reachable(parent, edges)}
        return reached
    for parent in order:
        found = reached[parent] = {lists[child] for child in edges[parent]}
        for child in edges[parent]:
            found |= reached[child]
    return reached


def _contradiction(parent: str, child: str, python: str, error: ValueError) -> Finding:
    return Finding(
        "error",
        parent,
        "packages",
        f"depends on '{child}', whose packages contradict each other on CPython {python} "
        f"(the Python of '{parent}''s image): {error}",
        f"give '{child}' packages that agree on CPython {python}, or the two environments one Python",
    )


def _runtime_findings(environment: str, conflicts: list[CoverageProblem]) -> Iterator[Finding]:
    for problem in conflicts:
        yield Finding(
            "error",
            environment,
            f"package '{problem.package}'",
            f"{problem.problem}; the worker imports flyte_infra, which needs it",
            problem.fix,
        )


def _call_findings(calls: Calls, edges: Edges) -> Iterator[Finding]:
    allowed_from: dict[str, set[str]] = {}  # computed only for environments that call another one
    for task, callees in calls.items():
        environment = task.environment
        for callee in callees:
            target = callee.environment
            if (
                target is environment or target.name in edges[environment.name]
            ):  # itself, or a direct dependency
                continue
            if environment.name not in allowed_from:  # the whole closure, only for an indirect call
                allowed_from[environment.name] = reachable(environment.name, edges)
            if target.name in allowed_from[environment.name]:
                continue
            yield Finding(
                "error",
                environment.name,
                f"task '{task.name}'",
                f"calls '{callee.qualified_name}', but '{environment.name}' does not depend on "
                f"'{target.name}', so that environment may not be deployed, or not first",
                f"add depends_on=[{target.name}] to '{environment.name}' "
                f"(or {environment.name}.add_dependency({target.name}))",
            )


def called_tasks(task: Task[..., Any]) -> list[Task[..., Any]]:
    """Tasks that `task`'s body calls: module globals, closure variables, `module.task` attributes,
    in the function and in functions nested in it. A task called (`t(...)`, `t.aio(...)`,
    `t.override(...)(...)`) or mapped (`flyte.map(t, ...)`, `partial(t, ...)`) counts; a task only
    passed on as a value (`return t`, `register(t)`) does not."""
    function = task.func
    closure = (
        {
            name: _cell_value(cell)
            for name, cell in zip(function.__code__.co_freevars, function.__closure__, strict=True)
        }
        if function.__closure__
        else {}
    )
    found: dict[Task[..., Any], None] = {}  # in order of first reference, each once
    for source, name, attributes, called, mapped in _function_references(function.__code__):
        current = (function.__globals__ if source == "global" else closure).get(name)
        unread = len(attributes)  # attributes read after `current`: `t.aio`, `t.override`
        for attribute in attributes:  # through modules only: `module.task`, `package.module.task`
            if not isinstance(current, types.ModuleType):
                break
            current = getattr(current, attribute, None)
            unread -= 1
        if isinstance(current, Task) and current is not task and (unread or called or mapped):
            found[current] = None
    return list(found)


Reference = tuple[str, str, tuple[str, ...], bool, bool]
"""("global" | "closure", a name the code loads, the attributes it then reads of it, in order,
whether the last of them is called, whether it follows a `map`/`partial` callee (its argument))."""

_MAPPERS = frozenset({"map", "partial"})

_MEMOISED_FUNCTIONS = 65_536
"""How many tasks' bytecode scans are kept: more than any program has, since a least-recently-used
cache smaller than the program it serves evicts every entry before it is read again."""


_NULL_AFTER_CALLEE = sys.version_info >= (3, 13)
"""Where a call's NULL goes: from 3.13 after the callee (`LOAD_DEREF f; PUSH_NULL`), before it
(`PUSH_NULL; LOAD_DEREF f`) in 3.11 and 3.12."""


def _pushes_null(instruction: dis.Instruction) -> bool:
    """A load that is the callee of a call: a method load, or a load that pushes a NULL with its
    value, which `dis` shows as `NULL + name` (3.11, 3.12) or `name + NULL` (3.13)."""
    return instruction.opname == "LOAD_METHOD" or any(
        part in ("NULL", "NULL|self") for part in instruction.argrepr.split(" + ")
    )


@functools.lru_cache(maxsize=_MEMOISED_FUNCTIONS)
def _function_references(code: types.CodeType) -> tuple[Reference, ...]:
    """`_references` of a function's code and of the functions nested in it. Bytecode never
    changes, so this is computed once per function; what the names refer to is looked up on
    every call of `called_tasks`."""
    return tuple(
        reference for nested in _code_objects(code) for reference in _references(nested, nested is code)
    )


def _references(code: types.CodeType, own_closure: bool) -> list[Reference]:
    """The names `code` loads and the attribute chains it reads from them (`module.task` is
    ("global", "module", ("task",))); closure variables count only in the task's own function,
    whose cells `called_tasks` reads."""
    references: list[Reference] = []
    current: tuple[str, str, list[str]] | None = None
    called = null_pushed = after_mapper = False
    previous_callee = ""

    def close() -> None:
        nonlocal current, previous_callee
        if current is not None:
            references.append((current[0], current[1], tuple(current[2]), called, after_mapper))
            previous_callee = (current[2][-1] if current[2] else current[1]) if called else ""
            current = None

    for instruction in dis.get_instructions(code):
        opname, argval = instruction.opname, instruction.argval
        if opname in ("LOAD_ATTR", "LOAD_METHOD") and current is not None:
            current[2].append(argval)
            called = called or _pushes_null(
                instruction
            )  # a NULL pushed with the head: the chain's end is called
            continue
        if opname == "PUSH_NULL" and _NULL_AFTER_CALLEE and current is not None:
            called = True
        close()
        had_callee, previous_callee = previous_callee, ""
        if opname == "PUSH_NULL":
            null_pushed, previous_callee = not _NULL_AFTER_CALLEE, had_callee
            continue
        if opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            current = ("global", argval, [])
        elif opname in ("LOAD_DEREF", "LOAD_CLOSURE") and own_closure:
            current = ("closure", argval, [])
        if current is not None:
            called = null_pushed or _pushes_null(instruction)
            after_mapper = had_callee in _MAPPERS and not called
        elif opname == "CACHE":
            previous_callee = had_callee
        null_pushed = False
    close()
    return references


def _cell_value(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a closure variable not assigned yet
        return None


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)
