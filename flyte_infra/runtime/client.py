"""Calls to another environment's worker over HTTP, retried until that worker is up."""

from __future__ import annotations

import http.client
import json
import math
import os
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import RemoteTaskError
from .codec import decode_result, encode_arguments
from .endpoints import ENDPOINT_TEMPLATE_VARIABLE, ENVIRONMENT_HEADER, endpoint_variable

if TYPE_CHECKING:
    from ..model.task import Task

__all__ = ["CALL_TIMEOUT_VARIABLE", "CONNECT_TIMEOUT", "DEFAULT_CALL_TIMEOUT", "call_remote", "endpoint_of"]

CALL_TIMEOUT_VARIABLE = "FLYTE_INFRA_CALL_TIMEOUT"
DEFAULT_CALL_TIMEOUT = 60.0
"""Seconds a call keeps retrying an environment whose worker is not up (FLYTE_INFRA_CALL_TIMEOUT)."""
CONNECT_TIMEOUT = 10.0
"""Seconds one connection attempt may take; once connected, the call waits as long as the task runs."""


def endpoint_of(environment: str, variables: Mapping[str, str] = os.environ) -> str:
    """`http://host:port` of an environment's worker: its own variable, else the pod's template."""
    explicit = variables.get(endpoint_variable(environment))
    if explicit:
        return explicit.rstrip("/")
    template = variables.get(ENDPOINT_TEMPLATE_VARIABLE)
    if template:
        return template.replace("{env}", environment).rstrip("/")
    raise RemoteTaskError(
        environment,
        None,
        "NoAddress",
        f"no address for environment '{environment}': set {endpoint_variable(environment)} "
        f"or {ENDPOINT_TEMPLATE_VARIABLE}",
        raised_by_task=False,
    )


def _call_timeout() -> float:
    """Seconds from FLYTE_INFRA_CALL_TIMEOUT; ValueError if it is not a number of seconds."""
    text = os.environ.get(CALL_TIMEOUT_VARIABLE, "")
    try:
        seconds = float(text) if text else DEFAULT_CALL_TIMEOUT
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise ValueError(f"{CALL_TIMEOUT_VARIABLE}={text!r} is not a number of seconds (0 or more)")
    return seconds


class _NotUp(Exception):
    """The worker cannot be reached, or answered 503: try again later."""


class _Lost(Exception):
    """The connection broke after the request was sent: the task may have run."""


def _post(url: str, payload: bytes) -> tuple[int, str | None, bytes]:
    """(status, environment header, body); `_NotUp` if nothing reached a serving worker.

    Only connecting is retried: once the request is sent the task may be running, so a broken
    connection (`_Lost`) is reported rather than the task run twice.
    """
    parts = urllib.parse.urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.netloc, timeout=CONNECT_TIMEOUT)
    try:
        try:
            connection.connect()
        except OSError as error:  # refused, name not resolvable yet, unreachable, timed out
            raise _NotUp(f"{type(error).__name__}: {error}") from error
        if connection.sock is not None:
            connection.sock.settimeout(None)
        try:
            connection.request("POST", parts.path, payload, {"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise _Lost(f"{type(error).__name__}: {error}") from error
        if response.status == 503:
            raise _NotUp(f"HTTP 503 from {url}")
        return response.status, response.getheader(ENVIRONMENT_HEADER), body
    finally:
        connection.close()


def call_remote(task: Task[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Run `task` on its environment's worker and return its (validated) result.

    Unreachable workers and 503s are retried with exponential backoff until FLYTE_INFRA_CALL_TIMEOUT;
    a task error, a bad argument or a lost connection fails at once.
    """
    environment, name = task.environment.name, task.qualified_name
    url = f"{endpoint_of(environment)}/tasks/{task.name}"
    payload = json.dumps({"args": encode_arguments(task, args, kwargs)}).encode()
    try:
        timeout = _call_timeout()
    except ValueError as error:
        raise RemoteTaskError(environment, name, "BadTimeout", str(error), raised_by_task=False) from error
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            status, served_by, body = _post(url, payload)
            break
        except _NotUp as not_up:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RemoteTaskError(
                    environment,
                    name,
                    "NotUp",
                    f"environment '{environment}' at {url} was not up within {timeout:g} s ({not_up})",
                    raised_by_task=False,
                ) from not_up
            time.sleep(min(delay, remaining))  # the last try comes at the deadline, not before it
            delay = min(delay * 2, 2.0)
        except _Lost as lost:
            raise RemoteTaskError(
                environment,
                name,
                "ConnectionLost",
                f"the connection to environment '{environment}' at {url} broke during the call ({lost})",
                raised_by_task=False,
            ) from lost
    if served_by != environment:
        raise RemoteTaskError(
            environment,
            name,
            "WrongWorker",
            f"{url} is not a worker of environment '{environment}' "
            f"(HTTP {status}, {ENVIRONMENT_HEADER}: {served_by})",
            raised_by_task=False,
        )
    try:
        answer = json.loads(body)
    except ValueError as error:
        raise RemoteTaskError(
            environment,
            name,
            "BadResponse",
            f"{url} answered HTTP {status} without JSON",
            raised_by_task=False,
        ) from error
    if status != 200:
        raise RemoteTaskError(
            environment, name, str(answer.get("error", status)), str(answer.get("message", ""))
        )
    return decode_result(task, answer["result"])
