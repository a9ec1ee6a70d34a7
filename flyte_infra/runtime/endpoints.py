"""How workers find and recognise each other: the endpoint variables and the response header."""

from __future__ import annotations

__all__ = ["ENDPOINT_TEMPLATE_VARIABLE", "ENVIRONMENT_HEADER", "endpoint_variable"]

ENDPOINT_TEMPLATE_VARIABLE = "FLYTE_INFRA_ENDPOINT_TEMPLATE"
"""Gives a worker the address of any environment's service: `{env}` stands for its name."""

ENVIRONMENT_HEADER = "X-Flyte-Infra-Environment"
"""Every worker response names the environment it serves; callers check they reached the right one."""


def endpoint_variable(environment: str) -> str:
    """The variable that overrides the address of one environment's service (tests, local runs)."""
    return "FLYTE_INFRA_ENDPOINT_" + environment.upper().replace("-", "_")
