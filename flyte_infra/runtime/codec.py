"""Task arguments and results as JSON, validated against the task's type hints (no pickle)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from ..errors import TaskArgumentError

if TYPE_CHECKING:
    from ..model.task import Task

__all__ = [
    "check_hints",
    "decode_argument",
    "decode_arguments",
    "decode_result",
    "decode_text_argument",
    "encode_arguments",
    "encode_result",
]


@cache
def _adapters(task: Task[..., Any]) -> tuple[dict[str, TypeAdapter[Any]], TypeAdapter[Any]]:
    """One adapter per parameter and one for the result; a hint that cannot be resolved or turned
    into JSON validation is a TaskArgumentError naming the task and the parameter."""
    try:
        hints = typing.get_type_hints(task.func, include_extras=True)  # keep Annotated validators
    except Exception as error:  # NameError for a name imported only under TYPE_CHECKING, and the like
        raise TaskArgumentError(
            task.qualified_name, f"its type hints cannot be resolved: {_first_line(error)}"
        ) from error
    names = [*inspect.signature(task.func).parameters, "return"]
    adapters = {name: _adapter(task, name, hints.get(name, Any)) for name in names}
    result = adapters.pop("return")
    return adapters, result


def _adapter(task: Task[..., Any], name: str, hint: Any) -> TypeAdapter[Any]:
    try:
        adapter, holds_secrets = _for_hint(hint)
    except TypeError:  # an unhashable hint (Annotated with a list in it, say): not shared
        adapter, holds_secrets = _for_hint.__wrapped__(hint)
    except _NotJSON as error:
        raise TaskArgumentError(
            task.qualified_name, f"type hint {hint!r} cannot be sent as JSON: {error}", name
        ) from error.__cause__
    if holds_secrets:
        raise TaskArgumentError(
            task.qualified_name,
            f"type hint {hint!r} holds a secret (SecretStr, SecretBytes), which JSON would carry masked; "
            "give the environment the secret instead: TaskEnvironment(secrets=[...])",
            name,
        )
    return adapter


class _NotJSON(Exception):
    """pydantic cannot validate this type from JSON; the message is its first line."""


@functools.lru_cache(maxsize=1024)
def _for_hint(hint: Any) -> tuple[TypeAdapter[Any], bool]:
    """The adapter of a type hint and whether it holds secrets, shared by every task that uses the
    hint (building an adapter is the slow part of checking a task's signature)."""
    try:
        adapter = TypeAdapter(hint)
        if not adapter.pydantic_complete and not adapter.rebuild():  # e.g. an unresolved recursive alias
            raise TypeError("the type is not fully defined")
    except Exception as error:
        raise _NotJSON(_first_line(error)) from error
    return adapter, _holds_secrets(adapter)


def _holds_secrets(adapter: TypeAdapter[Any]) -> bool:
    """Whether the type has write-only parts, as pydantic marks its secret types."""
    try:
        schema = adapter.json_schema()
    except Exception:  # a type without a JSON schema (validated in Python only) holds no secret type
        return False
    return _write_only(schema)


_VALUES = frozenset({"default", "examples", "const", "enum"})
"""JSON-schema keywords whose contents are data, not schema."""


_BY_NAME = frozenset({"properties", "$defs", "patternProperties"})
"""JSON-schema keywords that map names (of any spelling, "default" included) to schemas."""


def _write_only(schema: Any) -> bool:
    """Whether a JSON schema marks any part `writeOnly`, looking only where schemas are."""
    if isinstance(schema, list):
        return any(map(_write_only, schema))
    if not isinstance(schema, dict):
        return False
    if schema.get("writeOnly") is True:
        return True
    for key, value in schema.items():
        if key in _BY_NAME and isinstance(value, dict):
            if any(map(_write_only, value.values())):
                return True
        elif key not in _VALUES and _write_only(value):
            return True
    return False


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def _problem(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{first['msg']}{f' at {where}' if where else ''} (got {first.get('input')!r})"


def check_hints(task: Task[..., Any]) -> None:
    """TaskArgumentError if a parameter's or the result's type hint cannot travel as JSON."""
    _adapters(task)


def encode_arguments(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Bind a call's arguments to parameter names, validate each, and turn it into JSON-ready data."""
    try:
        bound = task.signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TaskArgumentError(task.qualified_name, str(error)) from error
    parameters, _ = _adapters(task)
    return {name: _json(parameters[name], value, task, name) for name, value in bound.arguments.items()}


def decode_argument(task: Task[..., Any], name: str, value: Any) -> Any:
    """Validate one argument against its parameter's hint; errors name the task and the parameter."""
    parameters, _ = _adapters(task)
    if name not in parameters:
        raise TaskArgumentError(task.qualified_name, f"unknown parameter {name!r}")
    return _validated(parameters[name], value, task, name)


def decode_text_argument(task: Task[..., Any], name: str, text: str) -> Any:
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
        raise error from None  # the text's failure adds nothing to the JSON value's


def decode_arguments(
    task: Task[..., Any],
    data: Mapping[str, Any],
    decode: Callable[[Task[..., Any], str, Any], Any] = decode_argument,
) -> dict[str, Any]:
    """Validate every argument with `decode` and check that they complete the task's signature."""
    if not isinstance(data, Mapping):
        raise TaskArgumentError(task.qualified_name, f"arguments must be an object, got {data!r}")
    unknown = sorted(set(data) - set(_adapters(task)[0]))
    if unknown:
        raise TaskArgumentError(task.qualified_name, f"unknown parameter(s) {', '.join(unknown)}")
    values = {name: decode(task, name, value) for name, value in data.items()}
    try:
        task.signature.bind(**values)
    except TypeError as error:
        raise TaskArgumentError(task.qualified_name, str(error)) from error
    return values


def encode_result(task: Task[..., Any], value: Any) -> Any:
    """Validate a task's return value against its hint and turn it into JSON-ready data."""
    return _json(_adapters(task)[1], value, task, "return")


def _validated(adapter: TypeAdapter[Any], value: Any, task: Task[..., Any], parameter: str) -> Any:
    """`value` validated by `adapter`; a TaskArgumentError naming the task and `parameter` otherwise
    ("return" for the result)."""
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        raise TaskArgumentError(task.qualified_name, _problem(error), parameter) from error


def _json(adapter: TypeAdapter[Any], value: Any, task: Task[..., Any], parameter: str) -> Any:
    """`value` validated by `adapter` and dumped as JSON-ready data; TaskArgumentError otherwise."""
    valid = _validated(adapter, value, task, parameter)
    try:
        return adapter.dump_python(valid, mode="json")
    except (PydanticSerializationError, ValueError, TypeError) as error:  # e.g. bytes that are not UTF-8
        problem = f"cannot be sent as JSON: {_first_line(error)}"
    raise TaskArgumentError(task.qualified_name, problem, parameter)


def decode_result(task: Task[..., Any], data: Any) -> Any:
    """Validate JSON data received as a task's result against its return hint."""
    return _validated(_adapters(task)[1], data, task, "return")
