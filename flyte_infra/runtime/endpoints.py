"""How a worker finds another environment's service: one variable per environment, or a template."""

from __future__ import annotations

__all__ = ["ENDPOINT_TEMPLATE_VARIABLE", "endpoint_variable"]

ENDPOINT_TEMPLATE_VARIABLE = "FLYTE_INFRA_ENDPOINT_TEMPLATE"
"""Gives a worker the address of any environment's service: `{env}` stands for its name."""


def endpoint_variable(environment: str) -> str:
    """The variable that overrides the address of one environment's service (tests, local runs)."""
    return "FLYTE_INFRA_ENDPOINT_" + environment.upper().replace("-", "_")
