"""Calls to another environment's worker over HTTP, retried until that worker is up."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from ..errors import RemoteTaskError
from ..task import Task
from .codec import decode_result, encode_arguments
from .endpoints import ENDPOINT_TEMPLATE_VARIABLE, endpoint_variable

__all__ = ["DEFAULT_CALL_TIMEOUT", "call_remote", "endpoint_of"]

DEFAULT_CALL_TIMEOUT = 60.0
"""Seconds a call keeps retrying an environment whose worker is not up (FLYTE_INFRA_CALL_TIMEOUT)."""


def endpoint_of(environment: str, variables: Mapping[str, str] = os.environ) -> str:
    """`http://host:port` of an environment's worker: its own variable, else the pod's template."""
    explicit = variables.get(endpoint_variable(environment))
    if explicit:
        return explicit.rstrip("/")
    template = variables.get(ENDPOINT_TEMPLATE_VARIABLE)
    if template:
        return template.replace("{env}", environment).rstrip("/")
    raise RemoteTaskError(
        f"no address for environment '{environment}': set {endpoint_variable(environment)} "
        f"or {ENDPOINT_TEMPLATE_VARIABLE}"
    )


class _NotUp(Exception):
    """The worker refused the connection or answered 503: try again later."""


def _post(url: str, payload: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 503:
            raise _NotUp(f"HTTP 503 from {url}") from None
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"error": "HTTPError", "message": body.decode(errors="replace")[:500]}
    except (urllib.error.URLError, ConnectionError, http.client.RemoteDisconnected) as error:
        raise _NotUp(str(getattr(error, "reason", error))) from None


def call_remote(task: Task[Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Run `task` on its environment's worker and return its (validated) result.

    Connection failures and 503s are retried with exponential backoff until FLYTE_INFRA_CALL_TIMEOUT;
    a task error or bad argument fails at once.
    """
    environment = task.environment.name
    url = f"{endpoint_of(environment)}/tasks/{task.name}"
    payload = json.dumps({"args": encode_arguments(task, args, kwargs)}).encode()
    timeout = float(os.environ.get("FLYTE_INFRA_CALL_TIMEOUT", DEFAULT_CALL_TIMEOUT))
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            status, body = _post(url, payload)
            break
        except _NotUp as not_up:
            if time.monotonic() + delay > deadline:
                raise RemoteTaskError(
                    f"task '{task.qualified_name}': environment '{environment}' at {url} was not up "
                    f"within {timeout:g} s ({not_up})"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    if status != 200:
        raise RemoteTaskError(
            f"task '{task.qualified_name}' failed in environment '{environment}': "
            f"{body.get('error', status)}: {body.get('message', '')}"
        )
    return decode_result(task, body["result"])
