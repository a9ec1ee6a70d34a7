import graphlib
import json

import pytest

from flyte_infra import CycleError, DuplicateEnvironmentError, TaskEnvironment
from flyte_infra.deploy.graph import build_graph, discover
from flyte_infra.deploy.plan import build_plan


def diamond():
    base = TaskEnvironment("base")
    left = TaskEnvironment("left", depends_on=[base])
    right = TaskEnvironment("right", depends_on=[base])
    top = TaskEnvironment("top", depends_on=[left, right])
    return base, left, right, top


def test_discovery_reaches_every_environment_once():
    *_, top = diamond()
    assert [env.name for env in discover([top])] == ["top", "left", "base", "right"]


def test_waves_and_order_put_dependencies_first():
    *_, top = diamond()
    graph = build_graph([top])
    assert graph.waves == (("base",), ("left", "right"), ("top",))
    assert graph.order == ["base", "left", "right", "top"]
    assert graph.dependents("base") == ("left", "right")
    assert graph.closure("top") == {"left", "right", "base"}
    assert graph.dependent_closure("base") == {"left", "right", "top"}


def test_duplicate_names_name_both_definitions():
    first = TaskEnvironment("train")
    second = TaskEnvironment("train")
    parent = TaskEnvironment("parent", depends_on=[first, second])
    with pytest.raises(
        DuplicateEnvironmentError,
        match=r"named 'train': one defined at .*test_graph.py:\d+, the other at .*test_graph.py:\d+",
    ):
        discover([parent])


@pytest.mark.parametrize("size", [2, 3, 5])
def test_cycle_error_prints_the_cycle_path(size):
    envs = [TaskEnvironment(f"e{i}") for i in range(size)]
    for i, env in enumerate(envs):
        env.add_dependency(envs[(i + 1) % size])
    expected = " -> ".join([f"e{i}" for i in range(size)] + ["e0"])
    with pytest.raises(CycleError, match=f"dependency cycle: {expected}$"):
        build_graph([envs[0]])


def test_order_matches_a_plain_graphlib_sort():
    envs = [TaskEnvironment(f"n{i}") for i in range(30)]
    for i, env in enumerate(envs):
        for j in (i * 7 % 30, i * 11 % 30):
            if j < i:
                env.add_dependency(envs[j])
    graph = build_graph(envs)
    position = {name: index for index, name in enumerate(graph.order)}
    for name, deps in graph.dependencies.items():
        assert all(position[dep] < position[name] for dep in deps)
    static = list(graphlib.TopologicalSorter(graph.dependencies).static_order())
    assert sorted(static) == sorted(graph.order)


def test_the_plan_is_plain_data_in_discovery_order_with_the_deploy_order_beside_it():
    *_, top = diamond()
    plan = build_plan(build_graph([top]))
    assert plan["order"] == ("base", "left", "right", "top")
    assert list(plan["environments"]) == ["top", "left", "base", "right"]
    assert plan["environments"]["top"]["depends_on"] == ("left", "right")
    top.packages.append("numpy")  # the plan is a snapshot: its sequences are immutable copies
    assert plan["environments"]["top"]["packages"] == ()
    assert json.loads(json.dumps(plan))["waves"] == [["base"], ["left", "right"], ["top"]]
