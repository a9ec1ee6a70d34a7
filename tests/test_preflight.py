import threading

import pytest

from flyte_infra import InvalidSpecError, PreflightError, TaskEnvironment
from flyte_infra.deploy.preflight import called_tasks, preflight

from .fixtures import helper_tasks


def test_a_consistent_graph_passes():
    child = TaskEnvironment("child", packages=["numpy>=1.24"])
    parent = TaskEnvironment("parent", packages=["numpy==1.26.4"], depends_on=[child])
    report = preflight([parent])
    assert report.ok and report.findings == []
    assert report.raise_for_errors().order == ["child", "parent"]


def test_all_findings_are_reported_together():
    child = TaskEnvironment("child", packages=["torch>=2.2", "pandas"])
    parent = TaskEnvironment("parent", packages=["torch==2.1.0"], depends_on=[child])
    stranger = TaskEnvironment("stranger")

    @stranger.task
    def other() -> int:
        return 1

    @parent.task
    def main() -> int:
        return other()

    report = preflight([parent, stranger])
    assert [(f.environment, f.subject) for f in report.errors] == [
        ("parent", "package 'torch'"),
        ("parent", "package 'pandas'"),
        ("parent", "task 'main'"),
    ]
    text = "\n".join(map(str, report.errors))
    assert "fix: add depends_on=[stranger] to 'parent'" in text
    assert "fix: in 'parent' packages, add 'pandas'" in text
    with pytest.raises(PreflightError, match="preflight failed with 3 finding"):
        report.raise_for_errors()


def test_calls_through_the_depends_on_closure_are_allowed():
    bottom = TaskEnvironment("bottom")
    middle = TaskEnvironment("middle", depends_on=[bottom])
    top = TaskEnvironment("top", depends_on=[middle])

    @bottom.task
    async def leaf() -> int:
        return 1

    @top.task
    async def root() -> int:
        return await leaf()

    assert preflight([top]).ok


def test_a_cycle_is_a_finding_beside_the_others():
    a = TaskEnvironment("a", packages=[])
    b = TaskEnvironment("b", packages=["six"], depends_on=[a])
    a.add_dependency(b)
    report = preflight([a])
    assert report.graph is None
    messages = [str(finding) for finding in report.errors]
    assert any("dependency cycle: a -> b -> a" in message for message in messages)
    assert any("package 'six'" in message for message in messages)


def test_called_tasks_sees_globals_module_attributes_closures_and_nested_functions():
    env = TaskEnvironment("caller")
    local_task = helper_tasks.double

    @env.task
    def uses_module_attribute() -> int:
        return helper_tasks.triple(1)

    @env.task
    def uses_closure() -> int:
        return local_task(1)

    @env.task
    def uses_nested() -> int:
        def inner() -> int:
            return helper_tasks.double(2)

        return inner()

    assert called_tasks(uses_module_attribute) == [helper_tasks.triple]
    assert called_tasks(uses_closure) == [helper_tasks.double]
    assert called_tasks(uses_nested) == [helper_tasks.double]
    report = preflight([env])
    assert {f.subject for f in report.errors} == {
        "task 'uses_module_attribute'",
        "task 'uses_closure'",
        "task 'uses_nested'",
    }


def test_called_tasks_tells_a_callee_from_an_argument_on_every_supported_python():
    # 3.11 and 3.12 push a call's NULL before its callee, 3.13 after it: each case reads both ways
    env = TaskEnvironment("caller")
    double, triple = helper_tasks.double, helper_tasks.triple

    @env.task
    def calls_a_closure_variable() -> int:
        return double(1)

    @env.task
    def passes_a_closure_variable_next_to_a_call() -> list[object]:
        return [double, triple(1)]

    @env.task
    def passes_tasks_to_calls_of_other_callables() -> object:
        return repr(double), (lambda: print)()(triple)

    assert called_tasks(calls_a_closure_variable) == [helper_tasks.double]
    assert called_tasks(passes_a_closure_variable_next_to_a_call) == [helper_tasks.triple]
    assert called_tasks(passes_tasks_to_calls_of_other_callables) == []


def test_a_task_whose_hints_cannot_travel_as_json_is_an_error_once_another_environment_calls_it():
    locks = TaskEnvironment("locks")

    @locks.task
    def lock(x: int) -> threading.Lock:  # type: ignore[valid-type]
        return threading.Lock()

    @locks.task
    def use_lock(x: int) -> bool:
        return lock(x) is not None  # same environment: a plain call, nothing travels

    (finding,) = preflight([locks]).findings
    assert (finding.severity, finding.environment, finding.subject) == ("warning", "locks", "task 'lock'")
    assert finding.message.startswith("result: type hint") and "cannot be sent as JSON" in finding.message
    assert finding.message.endswith("it works only when called by its own environment's tasks")

    caller = TaskEnvironment("caller", depends_on=[locks])

    @caller.task
    def borrow(x: int) -> bool:
        return lock(x) is not None

    (finding,) = preflight([caller]).findings
    assert (finding.severity, finding.subject) == ("error", "task 'lock'")


def test_a_task_nothing_calls_with_hints_that_cannot_travel_is_an_error():
    service = TaskEnvironment("service")

    @service.task
    def main_task() -> threading.Lock:  # type: ignore[valid-type]  # a client could not get its result
        return threading.Lock()

    (finding,) = preflight([service]).findings
    assert (finding.severity, finding.subject) == ("error", "task 'main_task'")


def test_packages_changed_after_construction_are_what_preflight_checks():
    child = TaskEnvironment("child", packages=["numpy>=1.24"])
    parent = TaskEnvironment("parent", packages=["numpy==1.26.4"], depends_on=[child])
    child.packages.append("pandas")
    assert [f.subject for f in preflight([parent]).errors] == ["package 'pandas'"]
    parent.packages = ["numpy==1.26.4", "pandas==2.2.2"]
    assert preflight([parent]).ok
    parent.packages.append("not a requirement!")
    with pytest.raises(InvalidSpecError, match=r"'parent': packages: \[2\] 'not a requirement!'"):
        preflight([parent])
    parent.packages = None  # type: ignore[assignment]
    with pytest.raises(InvalidSpecError, match="'parent': packages: expected a list of PEP 508"):
        preflight([parent])


def test_packages_that_would_replace_the_runtime_s_requirements_are_errors():
    legacy = TaskEnvironment("legacy", packages=["pydantic==1.10.13", "packaging<22"])
    report = preflight([legacy])
    assert [(f.environment, f.subject) for f in report.errors] == [
        ("legacy", "package 'pydantic'"),
        ("legacy", "package 'packaging'"),
    ]
    assert "pinned to ==1.10.13, which the worker runtime's 'pydantic<3,>=2.6' rejects" in str(
        report.errors[0]
    )
    assert preflight([TaskEnvironment("modern", packages=["pydantic>=2,<2.10", "packaging"])]).ok


def test_environments_with_equal_packages_each_get_their_findings():
    lines = ["pydantic==1.10.13", "numpy==1.26.4"]
    child = TaskEnvironment("child", packages=lines)
    parent = TaskEnvironment("parent", packages=["".join(line) for line in lines], depends_on=[child])
    assert [(f.environment, f.subject) for f in preflight([parent]).errors] == [
        ("parent", "package 'pydantic'"),
        ("child", "package 'pydantic'"),
    ]
    child.packages.append("pandas")  # the parent's packages are its own list
    assert "pandas" not in parent.package_set.lines
    errors = preflight([parent]).errors
    assert (errors[-1].environment, errors[-1].subject) == ("parent", "package 'pandas'")


def test_markers_apply_as_in_each_image_and_the_child_s_packages_as_the_parent_installs_them():
    backport = "tomli>=2; python_version < '3.11'"
    assert "tomli" in TaskEnvironment("old", image="python:3.10-slim", packages=[backport]).package_set.lines
    assert "tomli" not in TaskEnvironment("new", packages=[backport]).package_set.lines

    # the child's image is 3.11, where the backport does not apply; the parent's 3.10 needs it
    child = TaskEnvironment("child", packages=[backport])
    parent = TaskEnvironment("parent", image="python:3.10-slim", depends_on=[child])
    assert [(f.environment, f.subject) for f in preflight([parent]).errors] == [("parent", "package 'tomli'")]
    # the other way round the parent's image would not install it, so it need not list it
    child = TaskEnvironment("child", image="python:3.10-slim", packages=[backport])
    assert preflight([TaskEnvironment("parent", depends_on=[child])]).ok


def test_a_package_needed_deep_in_the_closure_is_named_once_for_the_first_environment_needing_it():
    backport = "tomli>=2; python_version < '3.11'"  # applies only in the top's 3.10 image
    deep = [TaskEnvironment(name, packages=[backport]) for name in ("deep-b", "deep-a")]
    upper = TaskEnvironment("upper", depends_on=[TaskEnvironment("lower", depends_on=deep)])
    top = TaskEnvironment("top", image="python:3.10-slim", depends_on=[upper])
    (finding,) = preflight([top]).findings  # upper and lower, on 3.11, need nothing
    assert (finding.environment, finding.subject) == ("top", "package 'tomli'")
    assert finding.message.startswith("depends (through depends_on) on 'deep-a', whose packages")
    # a direct dependency with the same need comes before the rest of the closure
    top.add_dependency(TaskEnvironment("side", packages=[backport]))
    (finding,) = preflight([top]).findings
    assert finding.message.startswith("depends on 'side', whose packages it must include: missing")
    deep[0].add_dependency(top)  # a cycle: reported beside the same package finding
    cycle, finding = preflight([top]).findings
    assert cycle.subject == "depends_on" and "dependency cycle" in cycle.message
    assert finding.message.startswith("depends on 'side', whose packages it must include: missing")


def test_a_child_s_packages_that_contradict_on_the_parent_s_python_are_an_error():
    child = TaskEnvironment(
        "child", image="python:3.12-slim", packages=["c==1; python_version < '3.12'", "c>=2"]
    )
    parent = TaskEnvironment("parent", packages=["c==2.1"], depends_on=[child])
    (finding,) = preflight([parent]).errors
    assert (finding.environment, finding.subject) == ("parent", "packages")
    assert "'child', whose packages contradict each other on CPython 3.11" in finding.message
    assert "'c>=2' contradicts" in finding.message
