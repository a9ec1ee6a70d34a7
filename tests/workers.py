"""Start real worker processes on loopback ports for tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import IO, Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_worker(module: str, environment: str, port: int, **variables: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "flyte_infra.runtime.worker", "--module", module, "--env", environment]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = tempfile.TemporaryFile()  # noqa: SIM115  # closed by stop(); a pipe nobody reads would block the worker
    process = subprocess.Popen(command, env={**os.environ, **variables}, stderr=log)
    _logs[process.pid] = log
    return process


_logs: dict[int, IO[bytes]] = {}
"""Each running worker's stderr, by pid; `stop` closes it."""


def wait_healthy(port: int, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return dict(json.loads(response.read()))
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def post(
    port: int, task: str, args: dict[str, Any], timeout: float = 60, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    """(status, body, environment header) of a task call."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/tasks/{task}",
        data=json.dumps({"args": args}).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.headers["X-Flyte-Infra-Environment"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["X-Flyte-Infra-Environment"]


def log_of(process: subprocess.Popen[bytes]) -> str:
    """What a worker started by `start_worker` has written to stderr so far."""
    log = _logs[process.pid]
    log.seek(0)
    return log.read().decode(errors="replace")


def stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log = _logs.pop(process.pid, None)
        if log is not None:
            log.close()
