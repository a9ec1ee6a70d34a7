"""Calls to another environment's worker over HTTP (httpx, one pooled client), retried until that
worker is up and bounded by one deadline for the whole call."""

from __future__ import annotations

import contextvars
import json
import math
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import RemoteTaskError
from ..model.validation import kubernetes_name
from .codec import decode_result, encode_arguments
from .endpoints import (
    DEADLINE_HEADER,
    ENDPOINT_TEMPLATE_VARIABLE,
    ENVIRONMENT_HEADER,
    TOKEN_VARIABLE,
    endpoint_variable,
)

if TYPE_CHECKING:
    from ..model.task import Task

__all__ = [
    "CALL_TIMEOUT_VARIABLE",
    "CONNECT_TIMEOUT",
    "DEFAULT_CALL_TIMEOUT",
    "call_remote",
    "endpoint_of",
    "incoming_deadline",
]

CALL_TIMEOUT_VARIABLE = "FLYTE_INFRA_CALL_TIMEOUT"
DEFAULT_CALL_TIMEOUT = 3600.0
"""Seconds one call may take in all, waiting for its worker to come up included (FLYTE_INFRA_CALL_TIMEOUT).
Past it the caller gives up with DeadlineExceeded and the callee cancels the task."""
CONNECT_TIMEOUT = 10.0
"""Seconds one connection attempt may take (less when the deadline is nearer)."""
KEEP_ALIVE = 2.0
"""Seconds a pooled idle connection is kept: less than the workers' keep-alive (5 s), so a connection
the worker is about to close is never reused."""

incoming_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "flyte_incoming_deadline", default=None
)
"""`time.monotonic()` by which the call being served must end: calls it makes end by then too."""

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _pool() -> httpx.Client:
    """The process's pooled client (thread-safe; async tasks use it from a thread)."""
    global _client
    with _client_lock:
        if _client is None:
            limits = httpx.Limits(
                max_connections=256, max_keepalive_connections=64, keepalive_expiry=KEEP_ALIVE
            )
            _client = httpx.Client(limits=limits, trust_env=False, follow_redirects=False)
        return _client


def endpoint_of(environment: str, variables: Mapping[str, str] = os.environ) -> str:
    """`http://host:port` of an environment's worker: its own variable, else the pod's template."""
    explicit = variables.get(endpoint_variable(environment))
    if explicit:
        return explicit.rstrip("/")
    template = variables.get(ENDPOINT_TEMPLATE_VARIABLE)
    if template:
        return template.replace("{env}", kubernetes_name(environment)).rstrip("/")
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
    """The worker cannot be reached, or answered 503: try again later (after `retry_after` s if given)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Lost(Exception):
    """The connection broke after the request was sent: the task may have run."""


class _Late(Exception):
    """The deadline passed while waiting for the answer: the connection is closed, the callee cancels."""


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), 30.0)
    except ValueError:
        return None


def _post(url: str, payload: bytes, remaining: float) -> tuple[int, str | None, bytes]:
    """(status, environment header, body); `_NotUp` if nothing reached a serving worker.

    Only connecting (and a 503) is retried: once the request is sent the task may be running, so a
    broken connection (`_Lost`) is reported rather than the task run twice.
    """
    headers = {"Content-Type": "application/json", DEADLINE_HEADER: f"{remaining:.3f}"}
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx.Timeout(remaining, connect=min(CONNECT_TIMEOUT, remaining))
    try:
        response = _pool().post(url, content=payload, headers=headers, timeout=timeout)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:  # nothing was sent
        raise _NotUp(f"{type(error).__name__}: {error}") from error
    except httpx.TimeoutException as error:
        raise _Late(f"{type(error).__name__}") from error
    except httpx.TransportError as error:
        raise _Lost(f"{type(error).__name__}: {error}") from error
    if response.status_code == 503:
        raise _NotUp(f"HTTP 503 from {url}", _retry_after(response))
    return response.status_code, response.headers.get(ENVIRONMENT_HEADER), response.content


def call_remote(task: Task[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Run `task` on its environment's worker and return its (validated) result.

    One deadline bounds the whole call: FLYTE_INFRA_CALL_TIMEOUT, or the deadline of the call being
    served when that is sooner. Unreachable workers and 503s are retried with exponential backoff
    (or the worker's Retry-After) until it; an answer not back by it fails with DeadlineExceeded and
    the callee is told to cancel (the caller closes the connection, and the callee was sent the
    deadline). A task error, a bad argument or a lost connection fails at once.
    """
    environment, name = task.environment.name, task.qualified_name
    url = f"{endpoint_of(environment)}/tasks/{task.name}"
    payload = json.dumps({"args": encode_arguments(task, args, kwargs)}).encode()
    try:
        timeout = _call_timeout()
    except ValueError as error:
        raise RemoteTaskError(environment, name, "BadTimeout", str(error), raised_by_task=False) from error
    deadline = time.monotonic() + timeout
    outer = incoming_deadline.get()
    if outer is not None and outer < deadline:
        deadline, timeout = outer, max(outer - time.monotonic(), 0.0)
    delay = 0.05
    while True:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise _NotUp("no time left")
            status, served_by, body = _post(url, payload, remaining)
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
            wait = not_up.retry_after if not_up.retry_after is not None else delay
            time.sleep(min(wait, remaining))  # the last try comes at the deadline, not before it
            delay = min(delay * 2, 2.0)
        except _Late as late:
            raise RemoteTaskError(
                environment,
                name,
                "DeadlineExceeded",
                f"environment '{environment}' at {url} did not answer within {timeout:g} s "
                f"({CALL_TIMEOUT_VARIABLE}); the task was cancelled",
                raised_by_task=False,
            ) from late
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
            environment,
            name,
            str(answer.get("error", status)),
            str(answer.get("message", "")),
            raised_by_task=status == 500,  # else the call failed around it (401, 404, 413, 504)
        )
    return decode_result(task, answer["result"])
