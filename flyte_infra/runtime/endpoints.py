"""How workers find and recognise each other: the endpoint variables and the response header."""

from __future__ import annotations

__all__ = [
    "DEADLINE_HEADER",
    "ENDPOINT_TEMPLATE_VARIABLE",
    "ENVIRONMENT_HEADER",
    "TOKEN_VARIABLE",
    "bearer_token",
    "endpoint_variable",
]

ENDPOINT_TEMPLATE_VARIABLE = "FLYTE_INFRA_ENDPOINT_TEMPLATE"
"""Gives a worker the address of any environment's service: `{env}` stands for its name."""

ENVIRONMENT_HEADER = "X-Flyte-Infra-Environment"
"""Every worker response names the environment it serves; callers check they reached the right one."""


def endpoint_variable(environment: str) -> str:
    """The variable that overrides the address of one environment's service (tests, local runs)."""
    return "FLYTE_INFRA_ENDPOINT_" + environment.upper().replace("-", "_")


DEADLINE_HEADER = "X-Flyte-Infra-Deadline"
"""Seconds the caller still waits for this call; the callee cancels the task when they pass."""

TOKEN_VARIABLE = "FLYTE_INFRA_TOKEN"
"""The namespace's shared worker token (from the `flyte-infra-token` Secret): callers send it as
`Authorization: Bearer <token>`, workers refuse calls without it (compared in constant time)."""


def bearer_token(header: bytes) -> bytes:
    """The token of an `Authorization: Bearer <token>` value; b"" when it is not one."""
    scheme, _, token = header.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""
