"""A worker: one environment's tasks served over HTTP (`python -m flyte_infra.runtime.worker --env NAME`).

    GET  /healthz            -> {"env": NAME, "tasks": [...]}
    POST /tasks/<task>       {"args": {param: value}} -> {"result": value}
                             400 bad arguments, 404 unknown task, 500 the task raised

Calls the served tasks make to tasks of other environments go to those environments' workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import signal
import sys
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ..errors import FlyteInfraError, TaskArgumentError
from ..loader import load_program
from .codec import decode_arguments, encode_result
from .endpoints import ENVIRONMENT_HEADER
from .routing import WorkerRouter, use_process_router, use_router

if TYPE_CHECKING:
    from ..model.environment import TaskEnvironment
    from ..model.task import Task

__all__ = ["main", "serve"]


def _run_served(task: Task[..., Any], arguments: dict[str, Any]) -> Any:
    """Run one of the served environment's tasks to completion in this thread."""
    if task.is_async:
        return asyncio.run(task.func(**arguments))
    return task.func(**arguments)


class _Handler(BaseHTTPRequestHandler):
    server: _WorkerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # one line per request, on stderr
        sys.stderr.write(f"[{self.server.environment.name}] {format % args}\n")

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(ENVIRONMENT_HEADER, self.server.environment.name)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path != "/healthz":
            self._reply(HTTPStatus.NOT_FOUND, {"error": "NotFound", "message": self.path})
            return
        environment = self.server.environment
        self._reply(HTTPStatus.OK, {"env": environment.name, "tasks": sorted(environment.tasks)})

    def do_POST(self) -> None:
        try:  # read the whole body first: the connection stays usable whatever the answer
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
            body = self.rfile.read(length)
        except ValueError:
            self.close_connection = True
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "BadRequest", "message": "invalid Content-Length"})
            return
        name = self.path.removeprefix("/tasks/")
        task = self.server.environment.tasks.get(name) if self.path.startswith("/tasks/") else None
        if task is None:
            message = f"environment '{self.server.environment.name}' has no task '{name}'"
            self._reply(HTTPStatus.NOT_FOUND, {"error": "UnknownTask", "message": message})
            return
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError(f'the body must be a JSON object {{"args": {{...}}}}, got {request!r}')
            arguments = decode_arguments(task, request.get("args", {}))
        except (ValueError, RecursionError) as error:  # bad or absurdly nested JSON, or TaskArgumentError
            self._reply(HTTPStatus.BAD_REQUEST, {"error": type(error).__name__, "message": str(error)})
            return
        try:
            result = self.server.context.copy().run(_run_served, task, arguments)
        except Exception as error:  # the task's own failure goes back to the caller
            self._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": type(error).__name__, "message": str(error)}
            )
            return
        try:
            encoded = encode_result(task, result)
        except TaskArgumentError as error:
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "BadResult", "message": str(error)})
            return
        self._reply(HTTPStatus.OK, {"result": encoded})


class _WorkerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], environment: TaskEnvironment) -> None:
        self.environment = environment
        self.context = contextvars.copy_context()  # each request runs in a copy: the router comes along
        self.context.run(use_router, WorkerRouter(environment.name))
        super().__init__(address, _Handler)


def serve(environment: TaskEnvironment, host: str = "0.0.0.0", port: int = 8080) -> _WorkerServer:
    """A server for `environment`'s tasks, bound and ready for `serve_forever()`.

    Requests run with the worker's router in their context. Threads that tasks start do not inherit
    it: `main` also makes it the process's router (`use_process_router`), which an embedding process
    that serves other environments' tasks must do itself.
    """
    return _WorkerServer((host, port), environment)


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
    try:
        environment = load_program(args.module).environment(args.env)
        server = serve(environment, args.host, args.port)
    except (FlyteInfraError, OSError, OverflowError) as error:  # OverflowError: a port beyond 65535
        print(f"error: worker '{args.env}': {error}", file=sys.stderr)
        return 1
    use_process_router(WorkerRouter(environment.name))  # threads that tasks start route calls too
    print(
        f"worker '{environment.name}' serving {sorted(environment.tasks)} on {args.host}:{args.port}",
        flush=True,
    )
    # As a container's PID 1 the default SIGTERM action is ignored: stop at once instead of being killed
    # at the end of the grace period.
    signal.signal(signal.SIGTERM, _stop)
    with contextlib.suppress(KeyboardInterrupt), server:
        server.serve_forever()
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
