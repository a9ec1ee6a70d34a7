"""The worker under hostile or heavy use: limits, strict parsing, deadlines, drain, tokens."""

import http.client
import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from flyte_infra.runtime.worker import WorkerLimits

from .workers import log_of, post, wait_healthy

MODULE = str(Path(__file__).parent / "fixtures" / "relay.py")


def raw_exchange(port: int, request: bytes) -> bytes:
    """Everything the worker sends back on one connection until it closes it (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


def test_content_length_with_transfer_encoding_is_refused_and_the_smuggled_request_never_runs(ports, worker):
    leaf = worker(MODULE, "leaf", ports["leaf"])
    wait_healthy(ports["leaf"])
    smuggled = b"POST /tasks/secret_failure HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    body = b"0\r\n\r\n" + smuggled
    request = (
        b"POST /tasks/square HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" % len(body)
    ) + body
    answer = raw_exchange(ports["leaf"], request)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.1") == 1  # the connection closed: the second request was not read
    assert b"Content-Length with Transfer-Encoding is refused" in answer
    assert "secret_failure" not in log_of(leaf)


def test_a_body_over_the_limit_gets_413_without_being_read(ports, worker):
    worker(MODULE, "leaf", ports["leaf"], FLYTE_INFRA_MAX_BODY="1000")
    wait_healthy(ports["leaf"])
    huge = b"POST /tasks/square HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n{"
    assert raw_exchange(ports["leaf"], huge).startswith(b"HTTP/1.1 413 ")
    streamed = b"POST /tasks/square HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    streamed += b"400\r\n" + b" " * 1024 + b"\r\n0\r\n\r\n"  # no Content-Length to check up front
    assert raw_exchange(ports["leaf"], streamed).startswith(b"HTTP/1.1 413 ")


def test_a_connection_whose_headers_never_complete_is_closed(ports, worker):
    worker(MODULE, "leaf", ports["leaf"], FLYTE_INFRA_HEADER_TIMEOUT="1")
    wait_healthy(ports["leaf"])
    assert raw_exchange(ports["leaf"], b"POST /tasks/square HTTP/1.1\r\nHost: x\r\nX-Slow:") == b""
    # the same on a kept-alive connection, after a first request was answered
    keep_alive = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost"
    assert raw_exchange(ports["leaf"], keep_alive).count(b"HTTP/1.1 200 ") == 1


def test_past_the_task_limit_a_call_gets_503_with_retry_after(ports, worker):
    worker(MODULE, "leaf", ports["leaf"], FLYTE_INFRA_MAX_TASKS="1")
    wait_healthy(ports["leaf"])

    def nap_until_admitted() -> None:  # the polling below may hold the slot when the nap arrives
        for _ in range(100):
            if post(ports["leaf"], "nap", {"seconds": 3})[0] != 503:
                return

    first = threading.Thread(target=nap_until_admitted)
    first.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", ports["leaf"], timeout=10)
        for _ in range(100):  # until the nap runs: then the one slot is taken
            connection.request("POST", "/tasks/square", json.dumps({"args": {"x": 2}}))
            response = connection.getresponse()
            answer = (response.status, response.getheader("Retry-After"), json.loads(response.read()))
            if response.status != 200:
                break
            time.sleep(0.02)
        assert answer == (503, "1", {"error": "Busy", "message": "worker 'leaf' runs 1 tasks"})
    finally:
        first.join(timeout=30)


def test_a_busy_worker_is_retried_by_callers_until_it_has_room(ports, worker):
    worker(MODULE, "leaf", ports["leaf"], FLYTE_INFRA_MAX_TASKS="1")
    worker(MODULE, "relay", ports["relay"], FLYTE_INFRA_ENDPOINT_LEAF=f"http://127.0.0.1:{ports['leaf']}")
    wait_healthy(ports["leaf"])
    wait_healthy(ports["relay"])
    outcomes = []
    callers = [
        threading.Thread(
            target=lambda: outcomes.append(post(ports["relay"], "ask_nap", {"seconds": 0.5})[:2])
        )
        for _ in range(3)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=60)
    assert outcomes == [(200, {"result": 0.5})] * 3


def test_a_callee_past_the_callers_deadline_is_cancelled_and_the_caller_fails(ports, worker):
    worker(MODULE, "leaf", ports["leaf"])
    worker(
        MODULE,
        "relay",
        ports["relay"],
        FLYTE_INFRA_ENDPOINT_LEAF=f"http://127.0.0.1:{ports['leaf']}",
        FLYTE_INFRA_CALL_TIMEOUT="1",
    )
    wait_healthy(ports["leaf"])
    wait_healthy(ports["relay"])
    status, body, _ = post(ports["relay"], "ask_nap", {"seconds": 60})
    assert (status, body["error"]) == (500, "RemoteTaskError")
    assert "did not answer within 1 s (FLYTE_INFRA_CALL_TIMEOUT); the task was cancelled" in body["message"]
    for _ in range(100):
        naps = post(ports["leaf"], "naps", {})[1]["result"]
        if naps["now"] == 0:
            break
        time.sleep(0.1)
    assert naps == {"now": 0, "cancelled": 1}


def test_a_task_error_goes_back_as_type_and_message_and_its_traceback_only_to_the_log(ports, worker):
    leaf = worker(MODULE, "leaf", ports["leaf"])
    wait_healthy(ports["leaf"])
    status, body, _ = post(ports["leaf"], "secret_failure", {})
    assert (status, body) == (
        500,
        {"error": "KeyError", "message": '"the message goes back; the traceback stays in the worker\'s log"'},
    )
    assert "Traceback (most recent call last)" in log_of(leaf)
    assert 'raise KeyError("the message goes back' in log_of(leaf)


def test_sigterm_fails_readiness_stops_accepting_and_finishes_in_flight_calls(ports, worker):
    leaf = worker(MODULE, "leaf", ports["leaf"])
    wait_healthy(ports["leaf"])
    outcomes = []
    callers = [
        threading.Thread(target=lambda: outcomes.append(post(ports["leaf"], "nap", {"seconds": 2})[:2]))
        for _ in range(5)
    ]
    for caller in callers:
        caller.start()
    for _ in range(100):
        if post(ports["leaf"], "naps", {})[1]["result"]["now"] == 5:
            break
    leaf.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionRefusedError):  # no longer accepting
        for _ in range(100):
            socket.create_connection(("127.0.0.1", ports["leaf"]), timeout=5).close()
            time.sleep(0.01)
    for caller in callers:
        caller.join(timeout=30)
    assert outcomes == [(200, {"result": 2})] * 5
    assert leaf.wait(timeout=10) == 0


def test_with_a_token_a_worker_refuses_calls_without_it_and_workers_send_it(ports, worker):
    token = {"FLYTE_INFRA_TOKEN": "s3cret-token"}
    worker(MODULE, "leaf", ports["leaf"], **token)
    worker(
        MODULE,
        "relay",
        ports["relay"],
        FLYTE_INFRA_ENDPOINT_LEAF=f"http://127.0.0.1:{ports['leaf']}",
        **token,
    )
    wait_healthy(ports["leaf"])
    wait_healthy(ports["relay"])
    assert post(ports["leaf"], "square", {"x": 3})[:2] == (
        401,
        {"error": "Unauthorized", "message": "missing or wrong bearer token"},
    )
    assert post(ports["leaf"], "square", {"x": 3}, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert post(ports["relay"], "sum_squares", {"n": 3}, headers={"Authorization": "Bearer s3cret-token"})[
        :2
    ] == (
        200,
        {"result": 5},
    )


def test_a_caller_with_the_wrong_token_gets_a_remote_error_naming_it(ports, worker):
    worker(MODULE, "leaf", ports["leaf"], FLYTE_INFRA_TOKEN="right")
    worker(MODULE, "relay", ports["relay"], FLYTE_INFRA_ENDPOINT_LEAF=f"http://127.0.0.1:{ports['leaf']}")
    wait_healthy(ports["leaf"])
    wait_healthy(ports["relay"])
    status, body, _ = post(ports["relay"], "sum_squares", {"n": 3})
    assert (status, body["error"]) == (500, "RemoteTaskError")
    assert body["message"] == "task 'leaf.square': missing or wrong bearer token"


def test_worker_limits_come_from_the_environment_and_bad_ones_are_named():
    limits = WorkerLimits.from_environment({"FLYTE_INFRA_MAX_TASKS": "3", "FLYTE_INFRA_DRAIN": "7.5"})
    assert (limits.max_tasks, limits.drain, limits.max_body) == (3, 7.5, WorkerLimits().max_body)
    for text in ("0", "-1", "nan", "lots"):
        with pytest.raises(ValueError, match=rf"FLYTE_INFRA_MAX_BODY='{text}' is not a positive number"):
            WorkerLimits.from_environment({"FLYTE_INFRA_MAX_BODY": text})
