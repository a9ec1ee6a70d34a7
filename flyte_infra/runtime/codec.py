"""Task arguments and results as JSON, validated against the task's type hints (no pickle)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..errors import FlyteInfraError
from ..task import Task

__all__ = ["TaskArgumentError", "decode_arguments", "decode_result", "encode_arguments", "encode_result"]


class TaskArgumentError(FlyteInfraError, ValueError):
    """An argument or result does not match the task's signature."""


@cache
def _adapters(task: Task[Any]) -> tuple[dict[str, TypeAdapter[Any]], TypeAdapter[Any]]:
    hints = typing.get_type_hints(task.func)
    parameters = {name: TypeAdapter(hints.get(name, Any)) for name in inspect.signature(task.func).parameters}
    return parameters, TypeAdapter(hints.get("return", Any))


def _problem(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{first['msg']}{f' at {where}' if where else ''} (got {first.get('input')!r})"


def encode_arguments(task: Task[Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Bind a call's arguments to parameter names and turn each into JSON-ready data."""
    try:
        bound = task.signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TaskArgumentError(f"task '{task.qualified_name}': {error}") from None
    parameters, _ = _adapters(task)
    return {name: parameters[name].dump_python(value, mode="json") for name, value in bound.arguments.items()}


def decode_arguments(task: Task[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate JSON data against the parameters' hints; errors name the task and the parameter."""
    parameters, _ = _adapters(task)
    unknown = sorted(set(data) - set(parameters))
    if unknown:
        raise TaskArgumentError(f"task '{task.qualified_name}': unknown parameter(s) {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        try:
            values[name] = parameters[name].validate_python(value)
        except ValidationError as error:
            raise TaskArgumentError(
                f"task '{task.qualified_name}': parameter '{name}': {_problem(error)}"
            ) from None
    try:
        task.signature.bind(**values)
    except TypeError as error:
        raise TaskArgumentError(f"task '{task.qualified_name}': {error}") from None
    return values


def encode_result(task: Task[Any], value: Any) -> Any:
    _, result = _adapters(task)
    try:
        return result.dump_python(result.validate_python(value), mode="json")
    except ValidationError as error:
        raise TaskArgumentError(f"task '{task.qualified_name}': result: {_problem(error)}") from None


def decode_result(task: Task[Any], data: Any) -> Any:
    _, result = _adapters(task)
    try:
        return result.validate_python(data)
    except ValidationError as error:
        raise TaskArgumentError(f"task '{task.qualified_name}': result: {_problem(error)}") from None
