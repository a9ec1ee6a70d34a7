import asyncio
import contextvars
import json
import threading
from pathlib import Path

import pytest

import flyte_infra as flyte
from flyte_infra import FlyteInfraError, RemoteTaskError
from flyte_infra.cli import main
from flyte_infra.errors import TaskArgumentError
from flyte_infra.loader import load_program
from flyte_infra.runtime.routing import use_router
from flyte_infra.runtime.run import run_task

from .fixtures import relay as relay_module

EXAMPLE = str(Path(__file__).parents[1] / "examples" / "ml_pipeline.py")


def test_the_pipeline_runs_in_process_across_environments():
    result = run_task(load_program(EXAMPLE), "ml_pipeline", {"size": "5", "epochs": "2"})
    assert result == {"samples": 5.0, "weight": 2.0, "loss": 0.0}


def test_results_flow_between_tasks_and_json_arguments_are_decoded():
    program = load_program(EXAMPLE)
    assert run_task(program, "data-prep.load_data", {"size": "3"}) == [0.0, 0.5, 1.0]
    assert run_task(program, "train.train", {"data": "[0.0, 1.0]", "epochs": "1"})["weight"] == pytest.approx(
        2.0, abs=0.01
    )


def test_unknown_tasks_and_bad_arguments_are_clear_errors():
    program = load_program(EXAMPLE)
    with pytest.raises(FlyteInfraError, match=r"has no task 'nope' \(it has: data-prep.load_data,"):
        run_task(program, "nope", {})
    with pytest.raises(FlyteInfraError, match=r"task 'pipeline\.ml_pipeline': parameter 'size'"):
        run_task(program, "ml_pipeline", {"size": "many"})


def test_flyte_run_runs_sync_and_async_tasks():
    env = flyte.TaskEnvironment("local-run")

    @env.task
    def inc(x: int) -> int:
        return x + 1

    @env.task
    async def twice(x: int) -> int:
        return inc(inc(x))

    assert flyte.run(inc, 1) == 2 and flyte.run(twice, x=1) == 3


def test_a_str_parameter_takes_command_line_text_that_looks_like_json():
    program = load_program(str(Path(__file__).parent / "fixtures" / "relay.py"))
    result = run_task(program, "ask", {"tag": "123"})
    assert result["leaf"]["tag"] == "123" and result["leaf"]["pid"] == result["relay_pid"]  # all in-process


def test_flyte_run_stays_in_process_whatever_router_is_active():
    class Refuse:
        def call(self, task, args, kwargs):
            raise AssertionError(f"{task} was routed away")

    def under_another_router():
        use_router(Refuse())
        return flyte.run(relay_module.sum_squares, 3)

    assert contextvars.copy_context().run(under_another_router) == 5


def test_flyte_run_of_an_async_task_inside_an_event_loop_says_to_await_it():
    async def inside():
        return flyte.run(relay_module.ask, "x")

    with pytest.raises(FlyteInfraError, match=r"async task 'relay\.ask' inside a running event loop; await"):
        asyncio.run(inside())


def test_cli_run_prints_json(capsys):
    assert main(["run", EXAMPLE, "ml_pipeline", "--arg", "size=4"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 4.0
    assert main(["run", EXAMPLE, "ml_pipeline", "--arg", "size"]) == 1
    assert "write it as name=value" in capsys.readouterr().err


def test_the_hello_example_runs_as_a_script_and_through_the_cli(capsys):
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "examples" / "hello.py"
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "['hello, ada', 'hello, grace']"
    assert main(["run", str(script), "welcome", "--arg", 'names=["x"]']) == 0
    assert json.loads(capsys.readouterr().out) == ["hello, x"]


def test_a_sync_task_that_runs_async_code_works_in_process_as_it_does_deployed():
    from .fixtures import three

    assert flyte.run(three.double_plus_one, 2) == 5  # a (async) -> b (sync, asyncio.run) -> c (async)


def test_calls_across_environments_in_process_go_through_json_and_hints_as_deployed():
    with pytest.raises(TaskArgumentError, match=r"task 'leaf\.square': parameter 'x'.*\(got 'four'\)"):
        flyte.run(relay_module.misuse)
    with pytest.raises(RemoteTaskError, match=r"'leaf.raw' failed in environment 'leaf': BadResult: .*JSON"):
        flyte.run(relay_module.ask_raw)
    failure = "task 'leaf.fail' failed in environment 'leaf': ValueError: bad input"
    assert flyte.run(relay_module.catch_failure) == failure  # a RemoteTaskError, as from a worker
    assert flyte.run(relay_module.raw) == b"\xff"  # called from outside any task: a plain call


def test_a_sync_task_run_from_inside_an_event_loop_runs_off_the_loop_as_deployed():
    from .fixtures import three

    async def notebook_cell():  # Jupyter runs cells on an event loop
        return flyte.run(three.double_sync, 2)

    assert asyncio.run(notebook_cell()) == 4  # it calls asyncio.run itself, which a loop would refuse


def test_a_callee_that_exits_fails_its_call_instead_of_ending_the_run():
    quitter = flyte.TaskEnvironment("quitter")
    caller = flyte.TaskEnvironment("caller", depends_on=[quitter])

    @quitter.task
    def leave() -> int:
        raise SystemExit(2)

    @caller.task
    def call_leave() -> str:
        try:
            leave()
        except RemoteTaskError as error:  # deployed, the exiting worker drops the call: also an error
            return str(error)
        return "returned"

    assert flyte.run(call_leave) == "task 'quitter.leave' failed in environment 'quitter': SystemExit: 2"


def test_a_sync_task_run_from_an_event_loop_stays_on_its_thread():
    env = flyte.TaskEnvironment("threads")

    @env.task
    def thread_of() -> int:
        return threading.get_ident()

    async def notebook_cell():
        return flyte.run(thread_of)

    assert asyncio.run(notebook_cell()) == threading.get_ident()  # so Ctrl-C still interrupts it
