"""TaskEnvironment: the image, packages and compute that a group of tasks run with."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, overload

from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

from ._spec import ServiceName, SpecModel, dns1123_label
from .errors import InvalidSpecError
from .packages import PackageSet, image_python, package_set
from .resources import Resources
from .task import Task

__all__ = ["DEFAULT_IMAGE", "Secret", "TaskEnvironment"]

R = TypeVar("R")

DEFAULT_IMAGE = "python:3.11-slim-bookworm"
"""Base image of an environment that names none."""

_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class Secret(SpecModel):
    """A secret exposed to the worker as an environment variable.

    It is read from the Kubernetes Secret `group` (default: `key`) at data key `key`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    group: str | None = None
    as_env_var: str | None = None

    @property
    def secret_name(self) -> str:
        return dns1123_label((self.group or self.key).lower().replace("_", "-"))

    @property
    def env_var(self) -> str:
        return self.as_env_var or re.sub(r"[^A-Za-z0-9_]", "_", self.key).upper()


class TaskEnvironment(SpecModel):
    """An image (base + pip packages), its compute, and the tasks that run in it.

    `depends_on` names the environments whose tasks this one calls: they are deployed first, and this
    environment's packages must cover theirs. It orders deployment only; it never makes a task wait.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: ServiceName
    image: str = DEFAULT_IMAGE
    packages: list[str] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    depends_on: list[TaskEnvironment] = Field(default_factory=list)
    env_vars: dict[str, str] = Field(default_factory=dict)
    secrets: list[Secret] = Field(default_factory=list)
    description: str | None = None

    _tasks: dict[str, Task[Any]] = PrivateAttr(default_factory=dict)
    _defined_at: str = PrivateAttr(default="<unknown>")
    _package_set: tuple[list[str], str, PackageSet] | None = PrivateAttr(default=None)

    def __init__(self, name: str, image: str = DEFAULT_IMAGE, **fields: Any) -> None:
        super().__init__(name=name, image=image, **fields)
        self._defined_at = _caller_location()
        self._check_dependencies(self.depends_on)
        self.package_set  # noqa: B018  # parsed once, here, and kept

    @classmethod
    def _spec_owner(cls, data: dict[str, Any]) -> str:
        return f"TaskEnvironment '{data.get('name', '?')}'"

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        if not value or any(char.isspace() for char in value):
            raise ValueError(f"'{value}' is not an image reference (e.g. python:3.11-slim-bookworm)")
        return value

    @field_validator("packages")
    @classmethod
    def _check_packages(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # ValueError naming the first line that is not a PEP 508 requirement, or a contradiction
        package_set(value, image_python(info.data.get("image", DEFAULT_IMAGE)))
        # interned: equal lines of all environments are one string (the text: a subclass's str() may differ)
        return [sys.intern(str.__str__(text)) for text in value]

    @field_validator("depends_on", mode="before")
    @classmethod
    def _check_depends_on(cls, value: Any) -> Any:
        for index, item in enumerate(value if isinstance(value, (list, tuple)) else [value]):
            if not isinstance(item, TaskEnvironment):
                raise ValueError(f"[{index}] expected a TaskEnvironment, got {type(item).__name__} {item!r}")
        return list(value)

    @field_validator("env_vars")
    @classmethod
    def _check_env_vars(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_VAR.match(key):
                raise ValueError(f"'{key}' is not an environment variable name")
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_shorthand(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [Secret(key=item) if isinstance(item, str) else item for item in value]
        return value

    # Identity semantics: two environments are the same only if they are the same object.
    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__  # by identity, in C: graphs key dictionaries by environment

    def __repr__(self) -> str:
        deps = ", ".join(env.name for env in self.depends_on)
        return f"TaskEnvironment(name={self.name!r}, image={self.image!r}, depends_on=[{deps}])"

    __str__ = __repr__

    @property
    def tasks(self) -> Mapping[str, Task[Any]]:
        """The tasks registered on this environment, by name (read-only: `@env.task` registers)."""
        private = self.__pydantic_private__ or {}  # read directly: pydantic's private-attribute hook is slow
        return MappingProxyType(private["_tasks"])

    @property
    def package_set(self) -> PackageSet:
        """`packages` parsed: the lines that apply in the image (Linux, its CPython), by normalised name."""
        private = self.__pydantic_private__ or {}
        packages, image = self.packages, self.image
        cached: tuple[list[str], str, PackageSet] | None = private["_package_set"]
        if cached is None or cached[0] != packages or cached[1] != image:  # first use, or changed since
            try:
                parsed = package_set(packages, image_python(image))  # ValueError: not requirements
                cached = private["_package_set"] = (list(packages), image, parsed)
            except ValueError as error:
                raise InvalidSpecError(f"TaskEnvironment '{self.name}'", "packages", str(error)) from None
        return cached[2]

    @property
    def defined_at(self) -> str:
        """`file:line` of the statement that created this environment."""
        return self._defined_at

    def add_dependency(self, *environments: TaskEnvironment) -> None:
        """Add environments to depends_on; repeats are ignored, and an environment cannot depend on itself."""
        self._check_dependencies(environments)
        for environment in environments:
            if not any(environment is existing for existing in self.depends_on):
                self.depends_on.append(environment)

    def _check_dependencies(self, environments: Any) -> None:
        for index, environment in enumerate(environments):
            if not isinstance(environment, TaskEnvironment):
                raise InvalidSpecError(
                    f"TaskEnvironment '{self.name}'",
                    f"depends_on[{index}]",
                    f"expected a TaskEnvironment, got {type(environment).__name__}",
                )
            if environment is self:
                raise InvalidSpecError(
                    f"TaskEnvironment '{self.name}'", "depends_on", "an environment cannot depend on itself"
                )

    def clone_with(self, **changes: Any) -> TaskEnvironment:
        """A new environment with these fields changed and no tasks (give it a new `name`)."""
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            raise InvalidSpecError(
                f"TaskEnvironment '{self.name}'",
                "clone_with",
                f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(type(self).model_fields)})",
            )
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        fields["depends_on"] = list(self.depends_on)
        fields.update(changes)
        return TaskEnvironment(**fields)

    @overload
    def task(self, func: Callable[..., R], /) -> Task[R]: ...

    @overload
    def task(self, func: None = None, /) -> Callable[[Callable[..., R]], Task[R]]: ...

    def task(self, func: Callable[..., Any] | None = None, /) -> Any:
        """Register a sync or async function as a task of this environment: `@env.task` or `@env.task()`."""

        def register(function: Callable[..., Any]) -> Task[Any]:
            if not callable(function):
                raise InvalidSpecError(
                    f"TaskEnvironment '{self.name}'", "task", f"{function!r} is not callable"
                )
            task = Task(function, self)
            if task.name in self._tasks:
                raise InvalidSpecError(
                    f"TaskEnvironment '{self.name}'",
                    "task",
                    f"a task named '{task.name}' is already registered",
                )
            self._tasks[task.name] = task
            return task

        return register if func is None else register(func)


def _caller_location() -> str:
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE_DIR) and "pydantic" not in filename:
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"
