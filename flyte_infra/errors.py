"""Errors raised by flyte-infra; each one is a one-line message a user can act on."""

from __future__ import annotations

from collections.abc import Sequence


class FlyteInfraError(Exception):
    """Base of every error flyte-infra reports to a user (printed without a traceback)."""


class InvalidSpecError(FlyteInfraError, ValueError):
    """A TaskEnvironment or Resources was given a value that does not validate.

    `subject` names what was being built (`TaskEnvironment 'train'`, `Resources`).
    """

    def __init__(self, subject: str, field: str, problem: str) -> None:
        self.subject = subject
        self.field = field
        self.problem = problem
        super().__init__(f"{subject}: {field}: {problem}")


class GraphError(FlyteInfraError):
    """The environments do not form a valid dependency graph (duplicate names, cycles)."""


class DuplicateEnvironmentError(GraphError):
    """Two different environments share one name."""


class CycleError(GraphError):
    """depends_on forms a cycle; `cycle` lists the names along it, first name repeated last."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"dependency cycle: {' -> '.join(cycle)}")


class LoadError(FlyteInfraError):
    """A user module could not be imported, or defines no environments."""


class PreflightError(FlyteInfraError):
    """Preflight found errors; nothing may be deployed. `findings` holds all of them."""

    def __init__(self, findings: Sequence[object]) -> None:  # Findings; typed loosely to avoid a cycle
        self.findings = list(findings)
        lines = "\n".join(f"  - {finding}" for finding in findings)
        super().__init__(f"preflight failed with {len(findings)} finding(s):\n{lines}")


class RemoteTaskError(FlyteInfraError):
    """A task call to another environment's worker failed."""

    @classmethod
    def failed(cls, task: str, environment: str, error: str, message: str) -> RemoteTaskError:
        """The task itself raised `error` (its type name) with `message` in `environment`."""
        return cls(f"task '{task}' failed in environment '{environment}': {error}: {message}")


class ServiceError(FlyteInfraError):
    """A local service of the devbox (dockerd, registry, cluster, Pulumi toolchain) failed.

    `service` names it; `log` is the file with its full output, when there is one.
    """

    def __init__(self, service: str, problem: str, *, log: object = None) -> None:
        self.service = service
        self.problem = problem
        self.log = log
        suffix = f" (log: {log})" if log is not None else ""
        super().__init__(f"{service}: {problem}{suffix}")
