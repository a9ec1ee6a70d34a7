import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flyte_infra.errors import TaskArgumentError
from flyte_infra.runtime.codec import (
    decode_arguments,
    decode_text_argument,
    encode_arguments,
)
from flyte_infra.runtime.routing import InProcessRouter, active_router
from flyte_infra.runtime.worker import serve

from .fixtures import relay as relay_module
from .workers import free_port, post, wait_healthy

MODULE = str(Path(__file__).parent / "fixtures" / "relay.py")


def relay_variables(ports, **more):
    return {"FLYTE_INFRA_ENDPOINT_LEAF": f"http://127.0.0.1:{ports['leaf']}", **more}


def test_a_call_to_another_environment_runs_in_its_worker(ports, worker):
    leaf = worker(MODULE, "leaf", ports["leaf"])
    relay = worker(MODULE, "relay", ports["relay"], **relay_variables(ports))
    assert wait_healthy(ports["relay"]) == {
        "env": "relay",
        "tasks": [
            "ask",
            "ask_crash",
            "ask_nap",
            "ask_raw",
            "boom",
            "catch_failure",
            "meet_twice",
            "misuse",
            "pids_from_threads",
            "square_from_thread",
            "sum_squares",
        ],
    }
    wait_healthy(ports["leaf"])
    status, body, served_by = post(ports["relay"], "ask", {"tag": "hello"})
    assert (status, served_by) == (200, "relay")
    assert body["result"] == {"relay_pid": relay.pid, "leaf": {"pid": leaf.pid, "tag": "hello"}}
    assert post(ports["relay"], "sum_squares", {"n": 4})[:2] == (200, {"result": 14})  # sync remote calls
    assert post(ports["relay"], "meet_twice", {})[:2] == (200, {"result": [0, 1]})  # concurrent ones
    # threads a task starts do not inherit its context, but their calls still go to leaf's worker
    expected = {"task": leaf.pid, "pool": leaf.pid, "thread": leaf.pid}
    assert post(ports["relay"], "pids_from_threads", {})[:2] == (200, {"result": expected})
    status, body, _ = post(ports["relay"], "ask_raw", {})  # leaf cannot send its result, and says why
    assert (status, body["error"]) == (500, "RemoteTaskError")
    assert "task 'leaf.raw' failed in environment 'leaf': BadResult" in body["message"]
    assert "result: cannot be sent as JSON: UnicodeDecodeError" in body["message"]
    assert post(ports["relay"], "square_from_thread", {"text": "7"})[:2] == (200, {"result": 49})
    failure = "task 'leaf.fail' failed in environment 'leaf': ValueError: bad input"
    assert post(ports["relay"], "catch_failure", {})[:2] == (200, {"result": failure})  # as in-process


def test_a_worker_that_is_not_up_yet_is_retried_and_depends_on_never_waits(ports, worker):
    worker(MODULE, "relay", ports["relay"], **relay_variables(ports))
    wait_healthy(ports["relay"])  # up and serving although the environment it depends on is not
    outcome = {}
    caller = threading.Thread(
        target=lambda: outcome.update(call=post(ports["relay"], "ask", {"tag": "late"}))
    )
    caller.start()
    time.sleep(1.0)
    leaf = worker(MODULE, "leaf", ports["leaf"])
    caller.join(timeout=30)
    status, body, _ = outcome["call"]
    assert status == 200 and body["result"]["leaf"] == {"pid": leaf.pid, "tag": "late"}


def test_a_worker_that_never_comes_up_fails_clearly_after_the_timeout(ports, worker):
    worker(MODULE, "relay", ports["relay"], **relay_variables(ports, FLYTE_INFRA_CALL_TIMEOUT="1"))
    wait_healthy(ports["relay"])
    started = time.monotonic()
    status, body, _ = post(ports["relay"], "ask", {"tag": "x"})
    assert time.monotonic() - started < 10
    assert status == 500 and body["error"] == "RemoteTaskError"
    assert (
        f"environment 'leaf' at http://127.0.0.1:{ports['leaf']}/tasks/whoami was not up within 1 s"
        in (body["message"])
    )


def test_bad_requests_and_task_errors(ports, worker):
    worker(MODULE, "relay", ports["relay"], **relay_variables(ports))
    wait_healthy(ports["relay"])
    status, body, _ = post(ports["relay"], "sum_squares", {"n": "four"})
    assert status == 400 and "parameter 'n'" in body["message"] and "'four'" in body["message"]
    status, body, _ = post(ports["relay"], "sum_squares", {"m": 1})
    assert status == 400 and "unknown parameter(s) m" in body["message"]
    assert post(ports["relay"], "nope", {})[0] == 404
    status, body, _ = post(ports["relay"], "boom", {})
    assert (status, body["error"], body["message"]) == (500, "RuntimeError", "kaboom")
    status, body, _ = post(ports["relay"], "misuse", {})  # rejected before it leaves the caller
    assert (status, body["error"]) == (500, "TaskArgumentError")
    assert "task 'leaf.square': parameter 'x'" in body["message"]


def test_the_connection_survives_a_404_with_a_body(ports, worker):
    worker(MODULE, "relay", ports["relay"])
    wait_healthy(ports["relay"])
    connection = http.client.HTTPConnection("127.0.0.1", ports["relay"], timeout=10)
    answers = []
    for task in ("nope", "boom"):  # one keep-alive connection: the 404's body must not be left unread
        connection.request("POST", f"/tasks/{task}", json.dumps({"args": {}}))
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())["error"]))
    connection.close()
    assert answers == [(404, "UnknownTask"), (500, "RuntimeError")]


def test_a_worker_at_the_wrong_address_or_dying_mid_call_fails_at_once(ports, worker):
    leaf = worker(MODULE, "leaf", ports["leaf"])
    # relay's address for leaf points at relay itself: it answers, but as the wrong environment
    misrouted = {"FLYTE_INFRA_ENDPOINT_LEAF": f"http://127.0.0.1:{ports['relay']}"}
    worker(MODULE, "relay", ports["relay"], **misrouted)
    other_port = free_port()
    worker(MODULE, "relay", other_port, **relay_variables(ports))
    for port in (ports["leaf"], ports["relay"], other_port):
        wait_healthy(port)
    status, body, _ = post(ports["relay"], "sum_squares", {"n": 2})
    assert status == 500 and "is not a worker of environment 'leaf'" in body["message"]
    assert "X-Flyte-Infra-Environment: relay" in body["message"]

    started = time.monotonic()
    status, body, _ = post(other_port, "ask_crash", {})
    assert time.monotonic() - started < 5 and leaf.wait(timeout=5) == 3  # not retried: ran once
    assert (status, body["error"]) == (500, "RemoteTaskError")
    assert "task 'leaf.crash': the connection to environment 'leaf'" in body["message"]
    assert "broke during the call" in body["message"]


def test_sigterm_stops_a_worker_cleanly(ports, worker):
    leaf = worker(MODULE, "leaf", ports["leaf"])
    wait_healthy(ports["leaf"])
    leaf.send_signal(signal.SIGTERM)
    assert leaf.wait(timeout=5) == 0  # handled (as PID 1 in a container an unhandled SIGTERM is ignored)


def test_serving_does_not_change_the_callers_router():
    server = serve(relay_module.relay, "127.0.0.1", 0)
    server.worker_app.pool.shutdown()
    assert isinstance(active_router(), InProcessRouter)


def test_a_worker_whose_module_fails_to_import_exits_with_one_line(tmp_path):
    module = tmp_path / "needs_missing.py"
    module.write_text("import flyte_infra\nimport not_installed_anywhere\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "flyte_infra.runtime.worker",
            "--module",
            str(module),
            "--env",
            "x",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 1
    assert completed.stderr.strip() == (
        f"error: worker 'x': cannot load '{module}': ModuleNotFoundError: "
        f"No module named 'not_installed_anywhere' (at {module}:2)"
    )


def test_the_codec_validates_against_type_hints():
    assert encode_arguments(relay_module.ask, ("t",), {}) == {"tag": "t"}
    assert decode_arguments(relay_module.sum_squares, {"n": 3}) == {"n": 3}
    with pytest.raises(TaskArgumentError, match=r"task 'relay\.sum_squares': parameter 'n'"):
        decode_arguments(relay_module.sum_squares, {"n": [1]})
    with pytest.raises(TaskArgumentError, match="missing a required argument: 'n'"):
        decode_arguments(relay_module.sum_squares, {})
    with pytest.raises(TaskArgumentError, match=r"task 'leaf\.square': parameter 'x'"):
        encode_arguments(relay_module.square, ("four",), {})  # checked before it goes on the wire


def test_command_line_text_is_json_unless_only_the_text_fits():
    ask, square = relay_module.ask, relay_module.sum_squares
    assert [decode_text_argument(ask, "tag", text) for text in ("123", "true", '"q"', "a b")] == [
        "123",
        "true",
        "q",
        "a b",
    ]
    assert decode_text_argument(square, "n", "7") == 7
    with pytest.raises(TaskArgumentError, match=r"parameter 'n'.*\(got 'seven'\)"):
        decode_text_argument(square, "n", "seven")
    with pytest.raises(TaskArgumentError, match=r"parameter 'n'.*\(got 1.5\)"):
        decode_text_argument(square, "n", "1.5")


def test_bad_bodies_get_a_400_not_a_hang_or_a_dropped_connection(ports, worker):
    worker(MODULE, "leaf", ports["leaf"])
    wait_healthy(ports["leaf"])
    for headers, body in (({"Content-Length": "-1"}, b""), ({}, b"[" * 100_000)):
        connection = http.client.HTTPConnection("127.0.0.1", ports["leaf"], timeout=5)
        connection.request("POST", "/tasks/square", body, headers)
        response = connection.getresponse()
        assert response.status == 400, response.read()
        connection.close()


def test_the_call_timeout_must_be_a_number_of_seconds(monkeypatch):
    from flyte_infra.errors import RemoteTaskError
    from flyte_infra.runtime.client import call_remote

    monkeypatch.setenv("FLYTE_INFRA_ENDPOINT_LEAF", f"http://127.0.0.1:{free_port()}")
    for text in ("nan", "-1", "inf", "soon"):
        monkeypatch.setenv("FLYTE_INFRA_CALL_TIMEOUT", text)
        with pytest.raises(RemoteTaskError, match=rf"FLYTE_INFRA_CALL_TIMEOUT='{text}' is not a number"):
            call_remote(relay_module.square, (2,), {})


def test_a_call_that_is_never_answered_retries_until_the_deadline_itself(monkeypatch):
    from flyte_infra.errors import RemoteTaskError
    from flyte_infra.runtime.client import call_remote

    monkeypatch.setenv("FLYTE_INFRA_CALL_TIMEOUT", "1.5")
    monkeypatch.setenv("FLYTE_INFRA_ENDPOINT_LEAF", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(RemoteTaskError, match=r"was not up within 1\.5 s"):
        call_remote(relay_module.square, (2,), {})
    assert 1.5 <= time.monotonic() - started < 3


def test_annotated_constraints_count_and_only_real_secrets_are_refused():
    from typing import Annotated

    import pydantic

    from flyte_infra import TaskEnvironment
    from flyte_infra.runtime.codec import check_hints

    env = TaskEnvironment("hints")

    @env.task
    def step(lr: Annotated[float, pydantic.Field(gt=0)]) -> float:
        return lr

    class Options(pydantic.BaseModel):
        flags: dict[str, bool] = {"writeOnly": True}  # data that looks like the keyword, not a secret

    @env.task
    def configure(options: Options) -> int:
        return len(options.flags)

    assert encode_arguments(step, (0.1,), {}) == {"lr": 0.1}
    with pytest.raises(TaskArgumentError, match=r"parameter 'lr': Input should be greater than 0"):
        encode_arguments(step, (-1.0,), {})
    check_hints(configure)
