"""Errors raised by flyte-infra (public, with `flyte_infra`).

Every error is a `FlyteInfraError` whose message is one sentence a user can act on, and whose
fields say the same as attributes, so a caller can tell a promotion failure from a bad stack file
without reading the text:

    try:
        flyte_infra.run(train, epochs=3)
    except flyte_infra.errors.RemoteTaskError as error:
        print(error.environment, error.task, error.error_type)

The CLI prints `error: <message>`, and the traceback with `flyte-infra --debug`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .deploy.preflight import Finding

__all__ = [
    "CycleError",
    "DiagramError",
    "DuplicateEnvironmentError",
    "EngineError",
    "FlyteInfraError",
    "GraphError",
    "ImageBuildError",
    "InvalidSpecError",
    "LoadError",
    "LockError",
    "ModuleExitError",
    "NameCollisionError",
    "PreflightError",
    "PromotionError",
    "RemoteTaskError",
    "ServiceError",
    "StackConfigError",
    "TaskArgumentError",
    "TaskTimeoutError",
    "UnsupportedFeatureError",
    "UsageError",
]


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters shown escaped (`\\n`): a value quoted in
    an error cannot cut its message in two, nor forge a line of output."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class FlyteInfraError(Exception):
    """Base of every error flyte-infra reports to a user (the CLI prints it without a traceback)."""

    exit_code = 1
    """The CLI's exit status when this error ends a command."""


class InvalidSpecError(FlyteInfraError, ValueError):
    """A TaskEnvironment, Resources or stack setting was given a value that does not validate.

    Args:
        subject: What was being built, e.g. `TaskEnvironment 'train'` or `Resources`.
        field: The offending field, e.g. `resources.cpu` or `depends_on[0]`.
        problem: What is wrong with it and, where it helps, an example of a valid value.
    """

    def __init__(self, subject: str, field: str, problem: str) -> None:
        self.subject, self.field, self.problem = map(one_line, (subject, field, problem))
        super().__init__(f"{self.subject}: {self.field}: {self.problem}")


class StackConfigError(InvalidSpecError):
    """A stack's settings (`stacks/Pulumi.<stack>.yaml`) are missing or do not validate.

    Args:
        stack: The stack, e.g. `dev`.
        key: The config key, e.g. `flyte-infra:replicasPerEnvironment.train`; None when the stack file
            as a whole is at fault (missing, not YAML, no `config:`).
        problem: What is wrong.
        message: The full sentence, when it reads better than `stack '<stack>': <key>: <problem>`.
    """

    def __init__(self, stack: str, key: str | None, problem: str, *, message: str | None = None) -> None:
        super().__init__(f"stack '{stack}'", key or "", problem)
        self.stack = stack
        self.key = key
        if message is not None or key is None:
            self.args = (one_line(message or f"stack '{stack}': {problem}"),)


class GraphError(FlyteInfraError):
    """The environments do not form a valid dependency graph (duplicate names, cycles)."""


class DuplicateEnvironmentError(GraphError):
    """Two different environments share one name.

    Args:
        name: The shared name.
        locations: Where each of the two was defined (`file:line`).
    """

    def __init__(self, name: str, locations: tuple[str, str]) -> None:
        self.name = name
        self.locations = locations
        super().__init__(
            f"two environments are named '{name}': one defined at {locations[0]}, "
            f"the other at {locations[1]}; give each a unique name (clone_with('other-name') for a copy)"
        )


class NameCollisionError(GraphError):
    """Two environments whose Flyte names differ derive the same Kubernetes name.

    Args:
        names: The two Flyte names.
        kubernetes_name: The name both derive.
        locations: Where each of the two was defined (`file:line`).
    """

    def __init__(self, names: tuple[str, str], kubernetes_name: str, locations: tuple[str, str]) -> None:
        self.names = names
        self.kubernetes_name = kubernetes_name
        self.locations = locations
        super().__init__(
            f"environments '{names[0]}' (defined at {locations[0]}) and '{names[1]}' (defined at "
            f"{locations[1]}) both become the Kubernetes name '{kubernetes_name}'; rename one of them"
        )


class UnsupportedFeatureError(FlyteInfraError, ValueError):
    """A Flyte 2 feature that flyte-infra does not support here.

    Args:
        feature: The feature, as the user wrote it (e.g. `flyte.Image.from_dockerfile`).
        reason: Why, and what to do instead.
    """

    def __init__(self, feature: str, reason: str) -> None:
        self.feature = feature
        self.reason = reason
        super().__init__(f"{feature} is not supported by flyte-infra: {reason}")


class TaskTimeoutError(FlyteInfraError, TimeoutError):
    """An attempt of a task ran longer than its `timeout` (a sync task's thread cannot be stopped:
    it is abandoned and runs to its end).

    Args:
        task: The task, `environment.task`.
        seconds: Its timeout.
    """

    def __init__(self, task: str, seconds: float) -> None:
        self.task = task
        self.seconds = seconds
        super().__init__(f"task '{task}' did not finish within its timeout of {seconds:g} s")


class CycleError(GraphError):
    """`depends_on` forms a cycle.

    Args:
        cycle: The names along it, the first name repeated last (`a -> b -> a`: a depends on b).
    """

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"dependency cycle: {' -> '.join(cycle)}")


class LoadError(FlyteInfraError):
    """A user module could not be imported, defines no environments, or lacks what was asked of it.

    Args:
        message: The sentence to show.
        module: The module as the user named it (a `.py` path or a dotted name).
    """

    def __init__(self, message: str, *, module: str) -> None:
        self.module = module
        super().__init__(message)


class ModuleExitError(LoadError):
    """A user module called `sys.exit()` (any code, 0 included) or was interrupted while imported.

    The CLI exits 2, never the module's own code: an import that exits 0 must not pass as a check.

    Args:
        message: The sentence to show.
        module: The module as the user named it.
    """

    exit_code = 2


class PreflightError(FlyteInfraError):
    """Preflight found errors; nothing may be deployed.

    Args:
        findings: Every error finding (`flyte_infra.deploy.preflight.Finding`).
    """

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        lines = "\n".join(f"  - {finding}" for finding in findings)
        super().__init__(f"preflight failed with {len(findings)} finding(s):\n{lines}")


class LockError(FlyteInfraError):
    """The environments' packages cannot be locked: unsatisfiable together, no wheel for the images'
    platform, or a lock that is missing or stale where it may not be refreshed (offline).

    Args:
        message: The sentence to show.
        environments: The environments whose requirements are in conflict, when known.
        packages: The packages the resolver named, when it did.
    """

    def __init__(
        self, message: str, *, environments: Sequence[str] = (), packages: Sequence[str] = ()
    ) -> None:
        self.environments = list(environments)
        self.packages = list(packages)
        super().__init__(message)


class PromotionError(FlyteInfraError):
    """A stage cannot deploy the images an earlier stage published.

    Args:
        message: The sentence to show.
        source: Where the images come from, e.g. `stack 'dev'`.
        target: The stack being deployed, when known.
        environment: The environment whose image is at fault, when one is.
    """

    def __init__(
        self, message: str, *, source: str, target: str | None = None, environment: str | None = None
    ) -> None:
        self.source = source
        self.target = target
        self.environment = environment
        super().__init__(message)


class ImageBuildError(FlyteInfraError):
    """An image could not be built or pushed with the docker CLI, or docker cannot build at all.

    Args:
        message: The sentence to show.
        environment: The environment whose image failed, when one did.
        image: The image reference being built, pulled or pushed, when one was.
        log: The lines of docker's output that explain the failure (pip's `ERROR` lines, say).
    """

    def __init__(
        self,
        message: str,
        *,
        environment: str | None = None,
        image: str | None = None,
        log: Sequence[str] = (),
    ) -> None:
        self.environment = environment
        self.image = image
        self.log = list(log)
        super().__init__(message)


class EngineError(FlyteInfraError):
    """The Pulumi engine could not run, or its run failed.

    Args:
        message: The sentence to show.
        command: The engine command (`preview`, `up`), when one ran.
        stack: The stack, when one was selected.
        run: What the run had done when it failed (`flyte_infra.pulumi.automation.StackRun`).
    """

    def __init__(
        self, message: str, *, command: str | None = None, stack: str | None = None, run: Any = None
    ) -> None:
        self.command = command
        self.stack = stack
        self.run = run
        super().__init__(message)


class TaskArgumentError(FlyteInfraError, ValueError):
    """An argument or result does not match the task's signature, or its type cannot travel as JSON.

    Args:
        task: The task, as `environment.task`.
        problem: What is wrong.
        parameter: The parameter at fault, `"return"` for the result, None for the call as a whole.
    """

    def __init__(self, task: str, problem: str, parameter: str | None = None) -> None:
        self.task = task
        self.problem = problem
        self.parameter = parameter
        where = f"{self.where}: " if self.where else ""
        super().__init__(f"task '{task}': {where}{problem}")

    @property
    def where(self) -> str:
        """`parameter 'x'`, `result`, or "" for the call as a whole."""
        if self.parameter is None:
            return ""
        return "result" if self.parameter == "return" else f"parameter '{self.parameter}'"


class RemoteTaskError(FlyteInfraError):
    """A call to a task of another environment failed: the task raised, or its worker was not reached.

    Args:
        environment: The callee's environment.
        task: The callee, as `environment.task`; None when no task was being called yet.
        error_type: The exception type the task raised (`ValueError`, `BadResult`), or what stopped
            the call (`NotUp`, `ConnectionLost`, `WrongWorker`, `BadResponse`, `NoAddress`, `BadTimeout`).
        message: The task's exception message, or what went wrong with the call.
        raised_by_task: Whether the task itself raised (rather than the call failing around it).
    """

    def __init__(
        self,
        environment: str,
        task: str | None,
        error_type: str,
        message: str,
        *,
        raised_by_task: bool = True,
    ) -> None:
        self.environment = environment
        self.task = task
        self.error_type = error_type
        self.message = message
        self.raised_by_task = raised_by_task
        if raised_by_task:
            text = f"task '{task}' failed in environment '{environment}': {error_type}: {message}"
        else:
            text = f"task '{task}': {message}" if task else message
        super().__init__(text)


class UsageError(FlyteInfraError):
    """A command-line option or API call was used in a way that cannot work.

    Args:
        message: The sentence to show.
        subject: The option or call at fault, e.g. `--arg` or `run()`.
    """

    def __init__(self, message: str, *, subject: str) -> None:
        self.subject = subject
        super().__init__(message)


class DiagramError(FlyteInfraError):
    """The environment diagram could not be written.

    Args:
        message: The sentence to show.
        output: The file that was to be written.
    """

    def __init__(self, message: str, *, output: str) -> None:
        self.output = output
        super().__init__(message)


class ServiceError(FlyteInfraError):
    """A local service of the devbox (dockerd, registry, cluster, Pulumi toolchain) failed.

    Args:
        service: The service or tool at fault (`dockerd`, `etcd`, `go`, `pulumi`).
        problem: What went wrong.
        log: The file with its full output, when there is one.
    """

    def __init__(self, service: str, problem: str, *, log: object = None) -> None:
        self.service = service
        self.problem = problem
        self.log = log
        suffix = f" (log: {log})" if log is not None else ""
        super().__init__(f"{service}: {problem}{suffix}")
