"""The dependency graph of environments: discovery, validation, deploy order and parallel waves."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from ..errors import CycleError, DuplicateEnvironmentError, NameCollisionError
from ..model.validation import kubernetes_name

if TYPE_CHECKING:
    from ..model.environment import TaskEnvironment

__all__ = ["Edges", "EnvironmentGraph", "build_graph", "discover", "discover_edges", "ordered", "reachable"]


def discover(roots: Iterable[TaskEnvironment]) -> list[TaskEnvironment]:
    """Every environment reachable from `roots` through depends_on, roots first, each once.

    Raises DuplicateEnvironmentError when two different environments share a name, and
    NameCollisionError when two names derive one Kubernetes name (`train_gpu`, `train-gpu`).
    """
    return list(discover_edges(roots)[0].values())


Edges = dict[str, tuple[str, ...]]
"""Each environment's name -> the names in its depends_on."""


def discover_edges(roots: Iterable[TaskEnvironment]) -> tuple[dict[str, TaskEnvironment], Edges]:
    """`discover`'s environments by name, and their edges, in one walk."""
    found: dict[str, TaskEnvironment] = {}
    by_kubernetes_name: dict[str, TaskEnvironment] = {}
    names: dict[TaskEnvironment, str] = {}  # hashed by identity: a visited dependency is not read again
    depends_on: list[list[TaskEnvironment]] = []  # each found environment's, read once, in `found` order
    stack = list(roots)
    stack.reverse()
    while stack:
        environment = stack.pop()
        if environment in names:
            continue
        name = environment.name
        known = found.get(name)
        if known is not None:
            raise DuplicateEnvironmentError(name, (known.defined_at, environment.defined_at))
        derived = kubernetes_name(name)
        other = by_kubernetes_name.setdefault(derived, environment)
        if other is not environment:
            raise NameCollisionError((other.name, name), derived, (other.defined_at, environment.defined_at))
        found[name] = environment
        names[environment] = name
        dependencies = environment.depends_on
        depends_on.append(dependencies)
        stack.extend(reversed(dependencies))
    name_of = names.__getitem__
    edges = dict(zip(found, [tuple(map(name_of, dependencies)) for dependencies in depends_on], strict=True))
    return found, edges


@dataclass(frozen=True)
class EnvironmentGraph:
    """Environments by name, their edges, and the order in which to deploy them."""

    environments: dict[str, TaskEnvironment]
    dependencies: Edges
    waves: tuple[tuple[str, ...], ...]
    """Groups that can deploy in parallel; every environment comes after all it depends on."""

    @property
    def order(self) -> list[str]:
        """A deploy order: dependencies before the environments that depend on them."""
        return [name for wave in self.waves for name in wave]

    @cached_property
    def _dependents_index(self) -> dict[str, tuple[str, ...]]:
        index: dict[str, list[str]] = {name: [] for name in self.environments}
        for name, dependencies in self.dependencies.items():
            for dependency in dependencies:
                index[dependency].append(name)
        return {name: tuple(sorted(names)) for name, names in index.items()}

    def dependents(self, name: str) -> tuple[str, ...]:
        """Environments that list `name` directly in depends_on."""
        return self._dependents_index[name]

    def closure(self, name: str) -> set[str]:
        """Every environment `name` depends on, directly or through others."""
        return reachable(name, self.dependencies)

    def dependent_closure(self, name: str) -> set[str]:
        """Every environment that depends on `name`, directly or through others."""
        return reachable(name, self._dependents_index)


def reachable(start: str, edges: Mapping[str, tuple[str, ...]]) -> set[str]:
    """Names reachable from `start` along `edges` (name -> names); `start` only if on a cycle."""
    seen: set[str] = set()
    stack = list(edges[start])
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(edges[name])
    return seen


def build_graph(roots: Iterable[TaskEnvironment]) -> EnvironmentGraph:
    """Discover the environments from `roots` and order them; raises on duplicate names and cycles."""
    return ordered(*discover_edges(roots))


def ordered(environments: dict[str, TaskEnvironment], edges: Edges) -> EnvironmentGraph:
    """The graph of what `discover_edges` returned, in deploy order; raises CycleError on a cycle."""
    sorter = graphlib.TopologicalSorter(edges)
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        raise CycleError(_readable_cycle(error.args[1])) from error
    waves = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        waves.append(tuple(ready))
        sorter.done(*ready)
    return EnvironmentGraph(environments, edges, tuple(waves))


def _readable_cycle(cycle: list[str]) -> list[str]:
    """graphlib reports a cycle against the depends_on direction; turn it to read `a -> b` as
    "a depends on b", starting at its alphabetically first name."""
    nodes = list(reversed(cycle[:-1]))
    start = nodes.index(min(nodes))
    nodes = nodes[start:] + nodes[:start]
    return [*nodes, nodes[0]]
