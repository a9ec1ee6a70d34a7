"""TaskEnvironment: the image, packages and compute that a group of tasks run with."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Never, ParamSpec, TypeVar, cast, overload

from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from ..deploy.packages import PackageSet, image_python, package_set
from ..errors import InvalidSpecError, UnsupportedFeatureError
from .image import Image, Layer
from .options import PodTemplate, ReusePolicy, check_cache
from .resources import Resources
from .task import Task
from .validation import FlyteName, SpecModel, dns1123_label, image_reference, kubernetes_name

__all__ = ["DEFAULT_IMAGE", "Secret", "TaskEnvironment"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_IMAGE = "python:3.11-slim-bookworm"
"""Base image of an environment that names none."""

_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"[-._A-Za-z0-9]{1,253}")
RESERVED_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT")
"""Variables the worker's Python needs as the image sets them; FLYTE_INFRA_* are reserved too,
except the worker's tuning knobs (`TUNABLE_VARIABLES`)."""
TUNABLE_VARIABLES = frozenset(
    "FLYTE_INFRA_" + name
    for name in (
        "CALL_TIMEOUT",
        "MAX_TASKS",
        "MAX_BODY",
        "HEADER_TIMEOUT",
        "BODY_TIMEOUT",
        "KEEP_ALIVE",
        "MAX_CONNECTIONS",
        "BACKLOG",
    )
)


def check_variable_name(name: str) -> str:
    """`name` if an environment may set it; ValueError on one line if not."""
    if not _ENV_VAR.match(name):
        raise ValueError(f"{name!r:.100} is not an environment variable name")
    if name in RESERVED_VARIABLES or (name.startswith("FLYTE_INFRA_") and name not in TUNABLE_VARIABLES):
        raise ValueError(
            f"'{name}' is reserved: the worker runtime sets it "
            f"(reserved: {', '.join(RESERVED_VARIABLES)}, FLYTE_INFRA_* but the worker's limits)"
        )
    return name


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""flyte_infra's own directory: frames there are not where a user created an environment."""


class Secret(SpecModel):
    """A secret exposed to the worker as an environment variable.

    Args:
        key: The data key in the Kubernetes Secret.
        group: The Kubernetes Secret to read it from (default: `key`, lower-cased, `_` as `-`).
        as_env_var: The variable's name (default: `key`, upper-cased).

    Example:
        ```python
        env = TaskEnvironment("fetch", secrets=["API_TOKEN", Secret(key="password", group="db")])
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    group: str | None = None
    as_env_var: str | None = None

    def __init__(
        self,
        key: str,
        group: str | None = None,
        mount: Any = None,
        as_env_var: str | None = None,
        **unknown: Never,
    ) -> None:
        if mount is not None:
            raise UnsupportedFeatureError(
                "flyte.Secret(mount=...)", "secrets reach the worker as environment variables; use as_env_var"
            )
        super().__init__(key=key, group=group, as_env_var=as_env_var, **unknown)

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: str) -> str:
        if not _SECRET_KEY.fullmatch(value):
            raise ValueError(f"{value!r:.100} is not a Secret data key (letters, digits, '-', '_', '.')")
        return value

    @field_validator("group")
    @classmethod
    def _check_group(cls, value: str | None) -> str | None:
        if value is not None:
            dns1123_label(value.lower().replace("_", "-"))  # a Flyte group name: `_` becomes `-`
        return value

    @field_validator("as_env_var")
    @classmethod
    def _check_as_env_var(cls, value: str | None) -> str | None:
        return None if value is None else check_variable_name(value)

    @model_validator(mode="after")
    def _names_derive(self) -> Secret:
        if self.group is None:
            try:
                self.secret_name  # noqa: B018  # derived from the key: it must be a DNS label
            except ValueError as error:
                raise ValueError(f"key {self.key!r}: {error}; give `group`, the Secret's name") from None
        if self.as_env_var is None:
            check_variable_name(self.env_var)
        return self

    @property
    def secret_name(self) -> str:
        """The Kubernetes Secret the value is read from."""
        return dns1123_label((self.group or self.key).lower().replace("_", "-"))

    @property
    def env_var(self) -> str:
        """The environment variable the worker sees."""
        return self.as_env_var or re.sub(r"[^A-Za-z0-9_]", "_", self.key).upper()


class TaskEnvironment(SpecModel):
    """An image (base + pip packages), its compute, and the tasks that run in it.

    Validated at construction: a bad value raises `InvalidSpecError` naming the environment and
    the field. Environments compare by identity; names must be unique within a program.

    Args:
        name: The environment's name, as Flyte spells it (`train_gpu`, `train-gpu`); its Kubernetes
            objects are named `kubernetes_name`, derived from it.
        image: The base image to install the packages into.
        packages: PEP 508 requirement lines; they must cover the packages of `depends_on`.
        resources: Requests and limits of the environment's worker.
        depends_on: The environments whose tasks this one calls. They are deployed first, and this
            environment's packages must cover theirs. It orders deployment only; it never makes a
            task wait.
        env_vars: Environment variables of the worker.
        secrets: Secrets exposed to the worker as environment variables (a key, or a `Secret`).
        description: Free text, shown in plans.
        shared_lock: Resolve this environment's packages with the other environments of its
            `depends_on` DAG, one version per package for all of them (the default), or, when False,
            on its own: its image then shares no package layer with them.

    Example:
        ```python
        prep = TaskEnvironment("data-prep", packages=["pandas==2.2.2"])
        train = TaskEnvironment(
            "train",
            packages=["pandas==2.2.2", "torch==2.3.1"],
            resources=Resources(cpu=4, memory="16Gi", gpu="A100:1"),
            depends_on=[prep],
        )
        ```
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: FlyteName
    image: str = DEFAULT_IMAGE
    packages: list[str] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    depends_on: list[TaskEnvironment] = Field(default_factory=list)
    env_vars: dict[str, str] = Field(default_factory=dict)
    secrets: list[Secret] = Field(default_factory=list)
    description: str | None = None
    reusable: ReusePolicy | None = None
    pod_template: PodTemplate | None = None
    cache: Any = "disable"
    queue: str | None = None
    interruptible: bool = False
    shared_lock: bool = True

    _tasks: dict[str, Task[..., Any]] = PrivateAttr(default_factory=dict)
    _defined_at: str = PrivateAttr(default="<unknown>")
    _image_layers: tuple[Layer, ...] = PrivateAttr(default=())
    _built_from: Image | None = PrivateAttr(default=None)

    def __init__(
        self,
        name: str,
        image: str | Image | None = DEFAULT_IMAGE,
        *,
        packages: Sequence[str] = (),
        resources: Resources | None = None,
        depends_on: Sequence[TaskEnvironment] = (),
        env_vars: Mapping[str, str] | None = None,
        secrets: Sequence[Secret | str] | Secret | str | None = (),
        description: str | None = None,
        reusable: ReusePolicy | None = None,
        pod_template: PodTemplate | str | None = None,
        cache: Any = "disable",
        queue: str | None = None,
        interruptible: bool = False,
        include: Sequence[str] = (),
        plugin_config: Any = None,
        shared_lock: bool = True,
        **unknown: Never,
    ) -> None:
        if plugin_config is not None:
            raise UnsupportedFeatureError(
                f"TaskEnvironment '{name}': plugin_config ({type(plugin_config).__name__})",
                "Flyte plugins (Ray, Spark, Dask, ...) have no flyte-infra equivalent",
            )
        if isinstance(pod_template, str):
            raise UnsupportedFeatureError(
                f"TaskEnvironment '{name}': pod_template={pod_template!r:.60}",
                "named pod templates live in Flyte's cluster; give a flyte.PodTemplate",
            )
        built_from = image if isinstance(image, Image) else None
        if built_from is not None:
            image, packages = built_from.base, [*packages, *built_from.pip_packages]
        elif image is None or image == "auto":
            image = DEFAULT_IMAGE
        if secrets is None or isinstance(secrets, (str, Secret)):
            secrets = [] if secrets is None else [secrets]
        fields: dict[str, Any] = {
            "name": name,
            "image": image,
            "packages": packages,
            "reusable": reusable,
            "pod_template": pod_template,
            "cache": cache,
            "queue": queue,
            "interruptible": interruptible,
            "depends_on": depends_on,
            "env_vars": {} if env_vars is None else env_vars,
            "secrets": secrets,
            "description": description,
            "shared_lock": shared_lock,
            **unknown,  # rejected by validation, naming the field
        }
        if resources is not None:
            fields["resources"] = resources
        super().__init__(**fields)
        self._built_from = built_from
        self._image_layers = () if built_from is None else built_from.build_layers
        self._defined_at = _caller_location()
        self._check_dependencies(self.depends_on)

    @classmethod
    def _spec_owner(cls, data: dict[str, Any]) -> str:
        return f"TaskEnvironment '{data.get('name', '?')}'"

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        return image_reference(value)

    @field_validator("cache")
    @classmethod
    def _check_cache(cls, value: Any) -> Any:
        return check_cache(value)

    @field_validator("pod_template")
    @classmethod
    def _check_pod_template(cls, value: PodTemplate | None) -> PodTemplate | None:
        if value is not None:
            value.spec  # noqa: B018  # refuses what Pod Security "restricted" forbids, naming it
        return value

    @field_validator("packages")
    @classmethod
    def _check_packages(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # ValueError naming the first line that is not a PEP 508 requirement, or a contradiction
        package_set(value, image_python(info.data.get("image", DEFAULT_IMAGE)))
        return [str.__str__(text) for text in value]  # the text itself: a subclass's str() may differ

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
            check_variable_name(key)
        return value

    @model_validator(mode="after")
    def _no_variable_twice(self) -> TaskEnvironment:
        seen = set(self.env_vars)
        for index, secret in enumerate(self.secrets):
            if secret.env_var in seen:
                raise ValueError(
                    f"secrets[{index}]: variable '{secret.env_var}' is already set by env_vars or a secret"
                )
            seen.add(secret.env_var)
        return self

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_shorthand(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [Secret(key=item) if isinstance(item, str) else item for item in value]
        return value

    # Identity semantics: two environments are the same only if they are the same object.
    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__  # by identity, as equality: graphs key dictionaries by environment

    def __repr__(self) -> str:
        deps = ", ".join(env.name for env in self.depends_on)
        return f"TaskEnvironment(name={self.name!r}, image={self.image!r}, depends_on=[{deps}])"

    __str__ = __repr__

    @property
    def tasks(self) -> Mapping[str, Task[..., Any]]:
        """The tasks registered on this environment, by name (read-only: `@env.task` registers)."""
        return MappingProxyType(self._private["_tasks"])

    @property
    def package_set(self) -> PackageSet:
        """`packages` parsed: the lines that apply in the image (Linux, its CPython), by normalised name."""
        try:
            return package_set(self.packages, image_python(self.image))
        except ValueError as error:  # changed since construction to something that is not requirements
            raise InvalidSpecError(f"TaskEnvironment '{self.name}'", "packages", str(error)) from error

    @property
    def unresolved_image(self) -> str | None:
        """The name given to `flyte.Image.from_ref_name` when Flyte's config does not name the image."""
        built_from: Image | None = self._private["_built_from"]
        return None if built_from is None else built_from.ref_name

    @property
    def _private(self) -> dict[str, Any]:
        """The private attributes by name. The properties above read them here rather than through
        pydantic's `__getattr__` fallback, which fails a lookup and searches the class first."""
        return cast(dict[str, Any], self.__pydantic_private__)

    @property
    def image_layers(self) -> tuple[Layer, ...]:
        """The build steps of a `flyte.Image` other than its pip packages (in `packages`)."""
        return self._image_layers

    @property
    def kubernetes_name(self) -> str:
        """The name of this environment's Kubernetes objects, derived from `name` (`_` as `-`)."""
        return kubernetes_name(self.name)

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

    def clone_with(
        self,
        name: str,
        image: str | Image | None = None,
        *,
        packages: Sequence[str] | None = None,
        resources: Resources | None = None,
        depends_on: Sequence[TaskEnvironment] | None = None,
        env_vars: Mapping[str, str] | None = None,
        secrets: Sequence[Secret | str] | Secret | str | None = None,
        description: str | None = None,
        **options: Any,
    ) -> TaskEnvironment:
        """A new environment named `name`, with the given fields changed and no tasks.

        Args:
            name: The new environment's name (required: names are unique in a program).
            image: See `TaskEnvironment`; None keeps this environment's value, as for the others.
            packages: As above.
            resources: As above.
            depends_on: As above (the clone gets its own list).
            env_vars: As above.
            secrets: As above.
            description: As above.

        Example:
            ```python
            big = train.clone_with("train-big", resources=Resources(gpu="H100:8"))
            ```
        """
        kept_options = ("reusable", "pod_template", "cache", "queue", "interruptible", "shared_lock")
        flyte_options = (*kept_options, "include", "plugin_config")  # the last two are not fields
        unknown = sorted(set(options) - set(flyte_options))
        if unknown:
            raise InvalidSpecError(
                f"TaskEnvironment '{self.name}'",
                "clone_with",
                f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(type(self).model_fields)})",
            )
        kept = {option: getattr(self, option) for option in kept_options}
        if image is None and self._built_from is not None:
            image, own_packages = (
                self._built_from,
                self.packages[: len(self.packages) - len(self._built_from.pip_packages)],
            )
        else:
            own_packages = self.packages
        return TaskEnvironment(
            name,
            self.image if image is None else image,
            **{**kept, **options},
            packages=own_packages if packages is None else packages,
            resources=self.resources if resources is None else resources,
            depends_on=self.depends_on if depends_on is None else depends_on,
            env_vars=self.env_vars if env_vars is None else env_vars,
            secrets=self.secrets if secrets is None else secrets,
            description=self.description if description is None else description,
        )

    @overload
    def task(self, func: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self, func: None = None, /, *, retries: Any = 0, timeout: Any = None, **options: Any
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self, func: Callable[P, R] | None = None, /, *, retries: Any = 0, timeout: Any = None, **options: Any
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a sync or async function as a task of this environment: `@env.task` or `@env.task()`.

        The task keeps the function's parameter and return types. Flyte's options: `retries` (an int
        or `RetryStrategy`) and `timeout` (seconds, a timedelta or `Timeout`) are honoured where
        the task runs; `short_name`, `cache`, `docs`, `report`, `interruptible`, `max_inline_io_bytes`,
        `queue`, `triggers`, `links`, `entrypoint`, `produces_artifacts` are accepted without effect;
        a task-level `pod_template` or `task_resolver` is refused (UnsupportedFeatureError).

        Example:
            ```python
            @env.task
            async def score(rows: list[float]) -> float:
                return sum(rows) / len(rows)
            ```
        """

        known = {
            "short_name",
            "cache",
            "docs",
            "pod_template",
            "report",
            "interruptible",
            "max_inline_io_bytes",
            "queue",
            "triggers",
            "links",
            "task_resolver",
            "entrypoint",
            "produces_artifacts",
        }
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidSpecError(
                f"TaskEnvironment '{self.name}'", "task", f"unknown option(s) {', '.join(unknown)}"
            )
        flyte_options = options

        def register(function: Callable[P, R]) -> Task[P, R]:
            if not callable(function):
                raise InvalidSpecError(
                    f"TaskEnvironment '{self.name}'", "task", f"{function!r} is not callable"
                )
            task = Task(function, self, retries=retries, timeout=timeout, **flyte_options)
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
