"""Errors carry their fields, chain their causes, and the CLI prints one line unless --debug."""

import pytest

import flyte_infra as flyte
from flyte_infra import TaskEnvironment
from flyte_infra.cli import build_parser, cmd_run, main
from flyte_infra.deploy.graph import build_graph, discover
from flyte_infra.deploy.promotion import promoted_ref
from flyte_infra.deploy.settings import StackSettings, load_stack_settings
from flyte_infra.errors import (
    CycleError,
    DuplicateEnvironmentError,
    PromotionError,
    RemoteTaskError,
    StackConfigError,
    TaskArgumentError,
    UsageError,
)
from flyte_infra.runtime.codec import encode_arguments

from .fixtures import relay as relay_module
from .stacks import EXAMPLE, ROOT


def test_a_task_s_failure_in_another_environment_keeps_its_type_and_message():
    leaf = TaskEnvironment("leaf-env")
    caller_env = TaskEnvironment("caller-env", depends_on=[leaf])

    @leaf.task
    def explode(reason: str) -> int:
        raise KeyError(reason)

    @caller_env.task
    def call() -> int:
        return explode(reason="boom")

    with pytest.raises(
        RemoteTaskError, match=r"task 'leaf-env\.explode' failed in environment 'leaf-env'"
    ) as info:
        flyte.run(call)
    error = info.value
    assert (error.environment, error.task, error.error_type) == ("leaf-env", "leaf-env.explode", "KeyError")
    assert error.message == "'boom'" and error.raised_by_task
    assert isinstance(error.__cause__, KeyError)  # chained, for --debug


def test_a_bad_argument_names_the_task_and_the_parameter():
    with pytest.raises(TaskArgumentError, match=r"task 'leaf\.square': parameter 'x'") as info:
        flyte.run(relay_module.misuse)
    assert (info.value.task, info.value.parameter, info.value.where) == ("leaf.square", "x", "parameter 'x'")
    assert info.value.__cause__ is not None  # pydantic's ValidationError


def test_a_task_without_its_arguments_is_an_error_of_the_call_as_a_whole():
    with pytest.raises(TaskArgumentError, match="missing a required argument: 'x'") as info:
        encode_arguments(relay_module.square, (), {})
    assert info.value.parameter is None and info.value.where == ""


def test_stack_errors_name_the_stack_and_the_key():
    with pytest.raises(StackConfigError, match=r"^stack 'dev': flyte-infra:replicas: ") as info:
        StackSettings.from_config({"module": EXAMPLE, "replicas": -1}, stack="dev")
    assert (info.value.stack, info.value.key) == ("dev", "flyte-infra:replicas")
    with pytest.raises(StackConfigError, match="no stack 'nope'") as missing:
        load_stack_settings(ROOT, "nope")
    assert (missing.value.stack, missing.value.key) == ("nope", None)


def test_promotion_errors_name_the_environment_and_the_source():
    with pytest.raises(PromotionError, match="is not pinned by digest") as info:
        promoted_ref({"train": "r/x:sha-1"}, "train", "sha-1", "stack 'dev'")
    assert (info.value.environment, info.value.source) == ("train", "stack 'dev'")


def test_graph_errors_carry_the_names():
    first, second = TaskEnvironment("twin"), TaskEnvironment("twin")
    with pytest.raises(DuplicateEnvironmentError, match="two environments are named 'twin'") as info:
        discover([TaskEnvironment("top", depends_on=[first, second])])
    assert info.value.name == "twin" and len(info.value.locations) == 2
    a, b = TaskEnvironment("a"), TaskEnvironment("b")
    a.add_dependency(b)
    b.add_dependency(a)
    with pytest.raises(CycleError, match=r"dependency cycle: a -> b -> a") as cycle:
        build_graph([a])
    assert cycle.value.cycle == ["a", "b", "a"]


def test_the_cli_prints_one_line_and_the_traceback_only_with_debug(capsys):
    assert main(["run", EXAMPLE, "data-prep.load_data", "--arg", "no-equals-sign"]) == 1
    error = capsys.readouterr().err
    assert error == "error: --arg 'no-equals-sign': write it as name=value\n"
    assert main(["--debug", "run", EXAMPLE, "data-prep.load_data", "--arg", "no-equals-sign"]) == 1
    error = capsys.readouterr().err
    assert "Traceback (most recent call last)" in error and "UsageError" in error
    assert error.endswith("error: --arg 'no-equals-sign': write it as name=value\n")


def test_usage_errors_name_the_option():
    with pytest.raises(UsageError, match="write it as name=value") as info:
        cmd_run(build_parser().parse_args(["run", EXAMPLE, "x", "--arg", "bad"]))
    assert info.value.subject == "--arg"
