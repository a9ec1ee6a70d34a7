import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flyte_infra.runtime.codec import TaskArgumentError, decode_arguments, encode_arguments

from .fixtures import relay as relay_module
from .workers import free_port, post, start_worker, stop, wait_healthy

MODULE = str(Path(__file__).parent / "fixtures" / "relay.py")


@pytest.fixture
def ports():
    return {"leaf": free_port(), "relay": free_port()}


def relay_variables(ports, **more):
    return {"FLYTE_INFRA_ENDPOINT_LEAF": f"http://127.0.0.1:{ports['leaf']}", **more}


def test_a_call_to_another_environment_runs_in_its_worker(ports):
    leaf = start_worker(MODULE, "leaf", ports["leaf"])
    relay = start_worker(MODULE, "relay", ports["relay"], **relay_variables(ports))
    try:
        assert wait_healthy(ports["relay"]) == {"env": "relay", "tasks": ["ask", "boom", "sum_squares"]}
        wait_healthy(ports["leaf"])
        status, body, served_by = post(ports["relay"], "ask", {"tag": "hello"})
        assert (status, served_by) == (200, "relay")
        assert body["result"] == {"relay_pid": relay.pid, "leaf": {"pid": leaf.pid, "tag": "hello"}}
        assert post(ports["relay"], "sum_squares", {"n": 4})[:2] == (200, {"result": 14})  # sync remote calls
    finally:
        stop(leaf, relay)


def test_a_worker_that_is_not_up_yet_is_retried_and_depends_on_never_waits(ports):
    relay = start_worker(MODULE, "relay", ports["relay"], **relay_variables(ports))
    leaf = None
    try:
        wait_healthy(ports["relay"])  # up and serving although the environment it depends on is not
        outcome = {}
        caller = threading.Thread(
            target=lambda: outcome.update(call=post(ports["relay"], "ask", {"tag": "late"}))
        )
        caller.start()
        time.sleep(1.0)
        leaf = start_worker(MODULE, "leaf", ports["leaf"])
        caller.join(timeout=30)
        status, body, _ = outcome["call"]
        assert status == 200 and body["result"]["leaf"] == {"pid": leaf.pid, "tag": "late"}
    finally:
        stop(relay, *([leaf] if leaf else []))


def test_a_worker_that_never_comes_up_fails_clearly_after_the_timeout(ports):
    relay = start_worker(
        MODULE, "relay", ports["relay"], **relay_variables(ports, FLYTE_INFRA_CALL_TIMEOUT="1")
    )
    try:
        wait_healthy(ports["relay"])
        started = time.monotonic()
        status, body, _ = post(ports["relay"], "ask", {"tag": "x"})
        assert time.monotonic() - started < 10
        assert status == 500 and body["error"] == "RemoteTaskError"
        assert (
            f"environment 'leaf' at http://127.0.0.1:{ports['leaf']}/tasks/whoami was not up within 1 s"
            in (body["message"])
        )
    finally:
        stop(relay)


def test_bad_requests_and_task_errors(ports):
    relay = start_worker(MODULE, "relay", ports["relay"], **relay_variables(ports))
    try:
        wait_healthy(ports["relay"])
        status, body, _ = post(ports["relay"], "sum_squares", {"n": "four"})
        assert status == 400 and "parameter 'n'" in body["message"] and "'four'" in body["message"]
        status, body, _ = post(ports["relay"], "sum_squares", {"m": 1})
        assert status == 400 and "unknown parameter(s) m" in body["message"]
        assert post(ports["relay"], "nope", {})[0] == 404
        status, body, _ = post(ports["relay"], "boom", {})
        assert (status, body["error"], body["message"]) == (500, "RuntimeError", "kaboom")
    finally:
        stop(relay)


def test_a_worker_whose_module_fails_to_import_exits_with_one_line(tmp_path):
    module = tmp_path / "needs_missing.py"
    module.write_text("import flyte_infra\nimport not_installed_anywhere\n")
    completed = subprocess.run(
        [sys.executable, "-m", "flyte_infra.worker", "--module", str(module), "--env", "x", "--port", "0"],
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
