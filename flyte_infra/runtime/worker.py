"""A worker: one environment's tasks served over HTTP (`python -m flyte_infra.runtime.worker --env NAME`).

    GET  /healthz            -> {"env": NAME, "tasks": [...]}; 503 once draining (readiness fails first)
    POST /tasks/<task>       {"args": {param: value}} -> {"result": value}
                             400 bad arguments, 401 no or wrong token, 404 unknown task, 413 body too
                             large, 500 the task raised, 503 busy or draining (Retry-After), 504 deadline

Served by uvicorn on h11 (a maintained, strict HTTP/1.1 parser) with a small ASGI app; calls the
served tasks make to tasks of other environments go to those environments' workers (`client`).
Limits come from the environment (see `WorkerLimits`); every one has a safe default.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import contextvars
import hmac
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import FlyteInfraError, TaskArgumentError
from ..loader import load_program
from .attempts import attempted, attempted_async
from .client import incoming_deadline
from .codec import decode_arguments, encode_result
from .endpoints import (
    DEADLINE_HEADER,
    ENVIRONMENT_HEADER,
    TOKEN_VARIABLE,
    bearer_token,
)
from .routing import WorkerRouter, use_process_router, use_router

if TYPE_CHECKING:
    from ..model.environment import TaskEnvironment
    from ..model.task import Task

__all__ = ["WorkerApp", "WorkerLimits", "main", "serve"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("flyte_infra.worker")


def _number(variables: MutableMapping[str, str] | os._Environ[str], name: str, default: float) -> float:
    text = variables.get(name, "")
    try:
        value = float(text) if text else default
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ValueError(f"{name}={text!r} is not a positive number")
    return value


@dataclass(frozen=True)
class WorkerLimits:
    """Bounds of one worker; each is read from FLYTE_INFRA_<NAME> (e.g. FLYTE_INFRA_MAX_TASKS)."""

    max_tasks: int = 64
    """Tasks running at once; one more gets 503 with Retry-After (callers retry it)."""
    max_body: int = 8 * 1024 * 1024
    """Bytes of a request body; a larger one gets 413 and the connection is closed."""
    header_timeout: float = 10.0
    """Seconds from a request's first byte to its complete headers (slow-loris bound)."""
    body_timeout: float = 30.0
    """Seconds to receive a whole request body."""
    keep_alive: float = 5.0
    """Seconds an idle kept-alive connection stays open (callers' pools expire theirs sooner)."""
    max_connections: int = 1024
    """Open connections; beyond it uvicorn answers 503 at once."""
    backlog: int = 2048
    """The listen backlog (the kernel caps it at net.core.somaxconn)."""
    drain: float = 20.0
    """Seconds in-flight tasks may still run after SIGTERM (the manifest sets it from the pod's
    terminationGracePeriodSeconds minus the preStop delay)."""

    @classmethod
    def from_environment(
        cls, variables: MutableMapping[str, str] | os._Environ[str] = os.environ
    ) -> WorkerLimits:
        """The limits, from FLYTE_INFRA_MAX_TASKS and friends; ValueError naming a bad one."""
        values: dict[str, Any] = {}
        for field, default in vars(cls()).items():
            value = _number(variables, f"FLYTE_INFRA_{field.upper()}", default)
            values[field] = int(value) if isinstance(default, int) else value
        return cls(**values)


class _StrictH11(H11Protocol):
    """uvicorn's h11 protocol with a header timeout: a connection whose request headers do not
    complete within `header_timeout` of their first byte (or of connecting) is closed. uvicorn's own
    keep-alive timer stops at the first byte, so without this a client trickling a header a byte at a
    time would hold its connection forever."""

    header_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # still waiting for the headers
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if before is None or before.response_complete:
            self._arm()  # a request begins on this connection
        super().data_received(data)
        if self.cycle is not None and self.cycle is not before:
            self._disarm()  # its headers are complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class _Running:
    """One task run in a pool thread; `cancel()` from the event loop cancels an async task's
    coroutine. A sync task cannot be interrupted (Python cannot stop a thread): it runs to its end,
    and keeps its slot until then."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    def run(self, task: Task[..., Any], arguments: dict[str, Any]) -> Any:
        if not task.is_async:
            return attempted(task, lambda: task.func(**arguments))

        async def main() -> Any:
            with self._lock:
                if self._cancelled:
                    raise asyncio.CancelledError
                self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            return await attempted_async(task, lambda: task.func(**arguments))

        try:
            return asyncio.run(main())
        finally:
            with self._lock:
                self._loop = None

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                with contextlib.suppress(RuntimeError):  # the loop just closed
                    self._loop.call_soon_threadsafe(self._task.cancel)


class _Reply(Exception):
    """Answer at once with this status and error body."""

    def __init__(self, status: HTTPStatus, error: str, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.close = status, error, message, close


class WorkerApp:
    """The ASGI app of one environment's worker.

    Args:
        environment: The environment whose tasks it serves.
        limits: Its bounds.
        token: The bearer token callers must send (FLYTE_INFRA_TOKEN); None serves without one.
    """

    def __init__(
        self, environment: TaskEnvironment, limits: WorkerLimits | None = None, token: str | None = None
    ) -> None:
        self.environment = environment
        self.limits = limits or WorkerLimits()
        self.token = token.encode() if token else None
        self.draining = False
        self.running = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(
            self.limits.max_tasks, thread_name_prefix=f"task-{environment.name}"
        )
        self.context = contextvars.copy_context()  # each task runs in a copy: the router comes along
        self.context.run(use_router, WorkerRouter(environment.name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body, close, retry = await self._handle(scope, receive)
        except _Reply as reply:
            status, close, retry = reply.status, reply.close, None
            body = {"error": reply.error, "message": reply.message}
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            retry = "1"
        data = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (ENVIRONMENT_HEADER.lower().encode(), self.environment.name.encode()),
        ]
        if retry:
            headers.append((b"retry-after", retry.encode()))
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": int(status), "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[HTTPStatus, dict[str, Any], bool, None]:
        headers: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            if key in headers and key in (b"content-length", b"transfer-encoding", b"authorization"):
                raise _Reply(HTTPStatus.BAD_REQUEST, "BadRequest", f"duplicate {key.decode()} header", True)
            headers[key] = value
        if b"content-length" in headers and b"transfer-encoding" in headers:  # request smuggling
            raise _Reply(
                HTTPStatus.BAD_REQUEST, "BadRequest", "Content-Length with Transfer-Encoding is refused", True
            )
        path, method = scope["path"], scope["method"]
        name = self.environment.name
        if path == "/healthz" and method in ("GET", "HEAD"):
            if self.draining:
                raise _Reply(HTTPStatus.SERVICE_UNAVAILABLE, "Draining", f"worker '{name}' is stopping")
            return HTTPStatus.OK, {"env": name, "tasks": sorted(self.environment.tasks)}, False, None
        if method != "POST" or not path.startswith("/tasks/"):
            raise _Reply(HTTPStatus.NOT_FOUND, "NotFound", path)
        if self.token is not None and not hmac.compare_digest(
            bearer_token(headers.get(b"authorization", b"")), self.token
        ):
            raise _Reply(HTTPStatus.UNAUTHORIZED, "Unauthorized", "missing or wrong bearer token", True)
        body = await self._body(headers, receive)
        task = self.environment.tasks.get(path.removeprefix("/tasks/"))
        if task is None:
            message = f"environment '{name}' has no task '{path.removeprefix('/tasks/')}'"
            raise _Reply(HTTPStatus.NOT_FOUND, "UnknownTask", message)
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError(f'the body must be a JSON object {{"args": {{...}}}}, got {request!r:.80}')
            arguments = decode_arguments(task, request.get("args", {}))
            deadline = _deadline(headers.get(DEADLINE_HEADER.lower().encode()))
        except (ValueError, RecursionError) as error:  # bad or absurdly nested JSON, or TaskArgumentError
            raise _Reply(HTTPStatus.BAD_REQUEST, type(error).__name__, str(error)) from error
        if self.draining:
            raise _Reply(HTTPStatus.SERVICE_UNAVAILABLE, "Draining", f"worker '{name}' is stopping", True)
        if self.running >= self.limits.max_tasks:
            raise _Reply(HTTPStatus.SERVICE_UNAVAILABLE, "Busy", f"worker '{name}' runs {self.running} tasks")
        self.running += 1
        try:
            result = await self._run(task, arguments, deadline, receive)
        finally:
            self.running -= 1
        try:
            return HTTPStatus.OK, {"result": encode_result(task, result)}, False, None
        except TaskArgumentError as error:
            raise _Reply(HTTPStatus.INTERNAL_SERVER_ERROR, "BadResult", str(error)) from error

    async def _body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = self.limits.max_body
        declared = headers.get(b"content-length")
        if declared is not None and int(declared) > limit:  # h11 has checked it is digits
            raise _Reply(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "TooLarge", f"the body exceeds {limit} bytes", True
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Reply(HTTPStatus.BAD_REQUEST, "Disconnected", "the caller left", True)
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise _Reply(
                            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            "TooLarge",
                            f"the body exceeds {limit} bytes",
                            True,
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _Reply(
                HTTPStatus.REQUEST_TIMEOUT,
                "Timeout",
                f"the body took over {self.limits.body_timeout:g} s",
                True,
            ) from None

    async def _run(
        self, task: Task[..., Any], arguments: dict[str, Any], deadline: float | None, receive: Receive
    ) -> Any:
        """The task's result; it runs in a pool thread, cancelled when the caller leaves or its deadline
        passes. Its exception goes back as type and message only; the traceback is logged here."""
        started = time.monotonic()
        running = _Running()
        context = self.context.copy()
        if deadline is not None:
            context.run(incoming_deadline.set, time.monotonic() + deadline)
        loop = asyncio.get_running_loop()
        outcome = loop.run_in_executor(self.pool, context.run, running.run, task, arguments)
        left = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({outcome, left}, timeout=deadline, return_when="FIRST_COMPLETED")
        finally:
            left.cancel()
        if outcome not in done:
            running.cancel()
            outcome.add_done_callback(_log_late)
            why = "the caller left" if left in done else f"its deadline of {deadline:g} s passed"
            log.warning("task '%s' cancelled: %s", task.qualified_name, why)
            raise _Reply(HTTPStatus.GATEWAY_TIMEOUT, "DeadlineExceeded", f"cancelled: {why}", True)
        error = outcome.exception()
        if error is None:
            log.info("POST /tasks/%s: done in %.1f ms", task.name, (time.monotonic() - started) * 1000)
            return outcome.result()
        if isinstance(error, asyncio.CancelledError | Exception):
            log.error("task '%s' raised", task.qualified_name, exc_info=error)
            raise _Reply(HTTPStatus.INTERNAL_SERVER_ERROR, type(error).__name__, str(error))
        raise error  # SystemExit, KeyboardInterrupt: the worker stops


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _log_late(outcome: asyncio.Future[Any]) -> None:
    if not outcome.cancelled() and outcome.exception() is not None:
        log.info("a cancelled task ended with %r", outcome.exception())


def _deadline(header: bytes | None) -> float | None:
    """Seconds left of the caller's deadline (X-Flyte-Infra-Deadline), or None."""
    if header is None:
        return None
    seconds = float(header)
    if not 0 < seconds < math.inf:
        raise ValueError(f"{DEADLINE_HEADER} must be a positive number of seconds")
    return seconds


class _Server(uvicorn.Server):
    """A uvicorn server that fails readiness before it stops accepting (see `handle_exit`)."""

    def __init__(self, config: uvicorn.Config, app: WorkerApp) -> None:
        super().__init__(config)
        self.worker_app = app

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.worker_app.draining = True  # /healthz answers 503 from now on
        log.info(
            "draining: finishing %d task(s), at most %g s",
            self.worker_app.running,
            self.worker_app.limits.drain,
        )
        super().handle_exit(sig, frame)


def serve(
    environment: TaskEnvironment,
    host: str = "0.0.0.0",
    port: int = 8080,
    limits: WorkerLimits | None = None,
    token: str | None = None,
) -> _Server:
    """A server for `environment`'s tasks, ready for `server.run()` (or `await server.serve()`).

    Tasks run with the worker's router in their context. Threads that tasks start do not inherit
    it: `main` also makes it the process's router (`use_process_router`), which an embedding process
    that serves other environments' tasks must do itself.
    """
    limits = limits or WorkerLimits()
    app = WorkerApp(environment, limits, token)
    protocol = type("_Protocol", (_StrictH11,), {"header_timeout": limits.header_timeout})
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        ws="none",
        lifespan="on",
        backlog=limits.backlog,
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=max(1, math.ceil(limits.keep_alive)),
        timeout_graceful_shutdown=max(1, math.ceil(limits.drain)),
        server_header=False,
        date_header=False,
        access_log=False,
        log_config=None,
    )
    return _Server(config, app)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flyte_infra.runtime.worker", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--env", required=True, help="the environment whose tasks to serve")
    parser.add_argument("--module", default=os.environ.get("FLYTE_INFRA_MODULE"), help="module defining it")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if not args.module:
        parser.error("--module or FLYTE_INFRA_MODULE is required")
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format=f"[{args.env}] %(levelname)s %(message)s"
    )
    try:
        limits = WorkerLimits.from_environment()
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port {args.port} is not a port (0-65535)")
        environment = load_program(args.module).environment(args.env)
    except (FlyteInfraError, ValueError) as error:
        print(f"error: worker '{args.env}': {error}", file=sys.stderr)
        return 1
    server = serve(environment, args.host, args.port, limits, os.environ.get(TOKEN_VARIABLE) or None)
    use_process_router(WorkerRouter(environment.name))  # threads that tasks start route calls too
    print(
        f"worker '{environment.name}' serving {sorted(environment.tasks)} on {args.host}:{args.port}",
        flush=True,
    )
    # uvicorn handles SIGTERM and SIGINT (as PID 1 the default SIGTERM action would be ignored):
    # readiness fails, the socket closes, in-flight tasks get `drain` seconds, then the process ends.
    # uvicorn raises the captured signal again once drained: let that be a clean exit
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        return 1  # could not bind: uvicorn has logged why
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # pool threads of sync tasks past the drain cannot be joined: do not wait for them


if __name__ == "__main__":
    sys.exit(main())
