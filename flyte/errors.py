"""`flyte.errors`: the exception classes Flyte code raises and catches, as plain exceptions here."""

from __future__ import annotations

from flyte_infra.errors import TaskTimeoutError, UnsupportedFeatureError

__all__ = [
    "BaseRuntimeError",
    "CustomError",
    "InitializationError",
    "InlineIOMaxBytesBreached",
    "NonRecoverableError",
    "OOMError",
    "RuntimeSystemError",
    "RuntimeUnknownError",
    "RuntimeUserError",
    "TaskTimeoutError",
    "UnsupportedFeatureError",
]


class BaseRuntimeError(RuntimeError):
    """Flyte's base of run-time errors: `code`, `kind`, `root_cause_message` as Flyte's."""

    def __init__(
        self, code: str = "", message: str = "", kind: str = "user", worker: str | None = None
    ) -> None:
        super().__init__(message or code)
        self.code, self.kind, self.worker = code, kind, worker
        self.root_cause_message = message


class RuntimeUserError(BaseRuntimeError):
    def __init__(self, code: str = "", message: str = "", worker: str | None = None) -> None:
        super().__init__(code, message, "user", worker)


class RuntimeSystemError(BaseRuntimeError):
    def __init__(self, code: str = "", message: str = "", worker: str | None = None) -> None:
        super().__init__(code, message, "system", worker)


class RuntimeUnknownError(BaseRuntimeError):
    pass


class OOMError(RuntimeUserError):
    """Flyte raises it when a task's pod ran out of memory; here a worker's OOM kill loses the call."""


class NonRecoverableError(RuntimeUserError):
    """Not retried by Flyte; here retries apply to every exception."""


class InlineIOMaxBytesBreached(RuntimeUserError):
    pass


class CustomError(RuntimeUserError):
    @classmethod
    def from_exception(cls, error: BaseException) -> CustomError:
        return cls(type(error).__name__, str(error))


class InitializationError(BaseRuntimeError):
    pass
