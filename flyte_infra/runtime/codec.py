"""Task arguments and results as JSON, validated against the task's type hints (no pickle)."""

from __future__ import annotations

import contextlib
import inspect
import json
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..errors import FlyteInfraError
from ..task import Task

__all__ = [
    "TaskArgumentError",
    "decode_argument",
    "decode_arguments",
    "decode_result",
    "decode_text_argument",
    "encode_arguments",
    "encode_result",
]


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
    """Bind a call's arguments to parameter names, validate each, and turn it into JSON-ready data."""
    try:
        bound = task.signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TaskArgumentError(f"task '{task.qualified_name}': {error}") from None
    parameters, _ = _adapters(task)
    return {
        name: parameters[name].dump_python(decode_argument(task, name, value), mode="json")
        for name, value in bound.arguments.items()
    }


def decode_argument(task: Task[Any], name: str, value: Any) -> Any:
    """Validate one argument against its parameter's hint; errors name the task and the parameter."""
    parameters, _ = _adapters(task)
    if name not in parameters:
        raise TaskArgumentError(f"task '{task.qualified_name}': unknown parameter {name!r}")
    try:
        return parameters[name].validate_python(value)
    except ValidationError as error:
        raise TaskArgumentError(
            f"task '{task.qualified_name}': parameter '{name}': {_problem(error)}"
        ) from None


def decode_text_argument(task: Task[Any], name: str, text: str) -> Any:
    """A command-line value: JSON, else (or when its JSON value does not fit, as `123` for a `str`) the
    text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return decode_argument(task, name, text)
    try:
        return decode_argument(task, name, value)
    except TaskArgumentError as error:
        with contextlib.suppress(TaskArgumentError):
            return decode_argument(task, name, text)
        raise error from None


def decode_arguments(
    task: Task[Any], data: Mapping[str, Any], decode: Callable[[Task[Any], str, Any], Any] = decode_argument
) -> dict[str, Any]:
    """Validate every argument with `decode` and check that they complete the task's signature."""
    if not isinstance(data, Mapping):
        raise TaskArgumentError(f"task '{task.qualified_name}': arguments must be an object, got {data!r}")
    unknown = sorted(set(data) - set(_adapters(task)[0]))
    if unknown:
        raise TaskArgumentError(f"task '{task.qualified_name}': unknown parameter(s) {', '.join(unknown)}")
    values = {name: decode(task, name, value) for name, value in data.items()}
    try:
        task.signature.bind(**values)
    except TypeError as error:
        raise TaskArgumentError(f"task '{task.qualified_name}': {error}") from None
    return values


def encode_result(task: Task[Any], value: Any) -> Any:
    """Validate a task's return value against its hint and turn it into JSON-ready data."""
    _, result = _adapters(task)
    try:
        return result.dump_python(result.validate_python(value), mode="json")
    except ValidationError as error:
        raise TaskArgumentError(f"task '{task.qualified_name}': result: {_problem(error)}") from None


def decode_result(task: Task[Any], data: Any) -> Any:
    """Validate JSON data received as a task's result against its return hint."""
    _, result = _adapters(task)
    try:
        return result.validate_python(data)
    except ValidationError as error:
        raise TaskArgumentError(f"task '{task.qualified_name}': result: {_problem(error)}") from None
