"""Long-running devbox processes under supervisord: started, watched, logged and stopped by it.

Each service writes a program section of its own into `<run>/supervisor.d/`; `ensure_running`
reloads that folder through supervisord's XML-RPC interface (as `supervisorctl update` does), so a
changed command restarts its program and an unchanged one is left alone. Readiness is ours: each
service says what "ready" means (`wait_until`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from ..errors import ServiceError
from .layout import Layout

__all__ = ["Program", "Supervisor", "devbox_lock", "wait_until"]


@dataclass(frozen=True)
class Program:
    """One supervised process.

    Args:
        name: the program's name in supervisord and its log file's (`<run>/logs/<name>.log`).
        command: the argv.
        environment: variables added to supervisord's own environment.
        stop_wait: seconds between SIGTERM and SIGKILL on stop.
    """

    name: str
    command: Sequence[str]
    environment: Mapping[str, str] = field(default_factory=dict)
    stop_wait: int = 10

    def section(self, logs: Path) -> str:
        def escape(value: str) -> str:
            return value.replace("%", "%%")

        environment = ",".join(f'{key}="{escape(value)}"' for key, value in self.environment.items())
        lines = [
            f"[program:{self.name}]",
            f"command={escape(shlex.join(self.command))}",
            "autostart=true",
            "autorestart=unexpected",
            "startsecs=1",
            f"stopwaitsecs={self.stop_wait}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={escape(str(logs / f'{self.name}.log'))}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=1",
        ]
        if environment:
            lines.append(f"environment={environment}")
        return "\n".join(lines) + "\n"


class Supervisor:
    """The devbox's supervisord: started on first use, reached through its unix socket."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.socket = layout.run / "supervisor.sock"
        self.config = layout.run / "supervisord.conf"
        self.programs_dir = layout.run / "supervisor.d"

    def log_of(self, name: str) -> Path:
        return self.layout.logs / f"{name}.log"

    def ensure_running(self, *programs: Program) -> set[str]:
        """Start supervisord if needed, write these programs, and (re)start what changed; the names
        of the programs that were (re)started."""
        self._start_daemon()
        for program in programs:
            path = self.programs_dir / f"{program.name}.conf"
            text = program.section(self.layout.logs)
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
        rpc = self._rpc()
        added, changed, removed = cast(list[list[str]], rpc.reloadConfig())[0]
        for name in removed + changed:
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.stopProcessGroup(name)
            rpc.removeProcessGroup(name)
        for name in changed + added:
            rpc.addProcessGroup(name)
        started = set(changed + added)
        for program in programs:
            if self.state(program.name) not in {"RUNNING", "STARTING"}:
                with contextlib.suppress(xmlrpc.client.Fault):
                    rpc.startProcess(program.name, False)
                started.add(program.name)
        return started

    def restart(self, *names: str) -> None:
        """Stop and start these running programs (their clients' caches went stale, say)."""
        rpc = self._rpc()
        for name in names:
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.stopProcess(name, True)
            rpc.startProcess(name, False)

    def state(self, name: str) -> str | None:
        """The program's supervisord state (`RUNNING`, `STOPPED`, `FATAL`, ...), None if unknown."""
        if not self.socket.exists():
            return None
        try:
            return str(cast(dict[str, Any], self._rpc().getProcessInfo(name))["statename"])
        except (xmlrpc.client.Fault, OSError):
            return None

    def pid(self, name: str) -> int | None:
        try:
            pid = int(cast(dict[str, Any], self._rpc().getProcessInfo(name))["pid"])
        except (xmlrpc.client.Fault, OSError):
            return None
        return pid or None

    def stop(self, *names: str) -> list[str]:
        """Stop and forget these programs; the names of those that were running."""
        if not self.socket.exists():
            return []
        stopped = []
        for name in names:
            if self.state(name) is None:
                continue
            rpc = self._rpc()
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.stopProcess(name, True)
                stopped.append(name)
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.removeProcessGroup(name)
            (self.programs_dir / f"{name}.conf").unlink(missing_ok=True)
        return stopped

    def shutdown_if_idle(self) -> None:
        """Stop supervisord itself once it supervises nothing."""
        if not self.socket.exists():
            return
        try:
            rpc = self._rpc()
            if not rpc.getAllProcessInfo():
                rpc.shutdown()
        except (xmlrpc.client.Fault, OSError):
            return

    def _rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def _alive(self) -> bool:
        try:
            return self._rpc().getState()["statename"] == "RUNNING"  # type: ignore[no-any-return]
        except (OSError, xmlrpc.client.Fault):
            return False

    def _start_daemon(self) -> None:
        if self._alive():
            return
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        self.programs_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "[unix_http_server]\n"
            f"file={self.socket}\nchmod=0700\n\n"
            "[supervisord]\n"
            f"logfile={self.layout.logs / 'supervisord.log'}\n"
            f"pidfile={self.layout.run / 'supervisord.pid'}\n"
            "logfile_maxbytes=5MB\nlogfile_backups=1\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[include]\nfiles = {self.programs_dir}/*.conf\n"
        )
        self.socket.unlink(missing_ok=True)
        subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.config)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        wait_until(self._alive, 15, "supervisord", self.layout.logs / "supervisord.log")


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    log: Path | None = None,
    failed: Callable[[], str | None] | None = None,
) -> None:
    """Poll `check` every 0.2 s until it holds; a ServiceError after `timeout` s, or as soon as
    `failed` returns a reason (a process that exited, say)."""
    deadline = time.monotonic() + timeout
    while not check():
        reason = failed() if failed is not None else None
        if reason is None and time.monotonic() > deadline:
            reason = f"not ready within {timeout:.0f}s"
        if reason is not None:
            raise ServiceError(what, f"{reason}{_tail(log)}", log=log)
        time.sleep(0.2)


def _tail(log: Path | None, lines: int = 3) -> str:
    if log is None or not log.is_file():
        return ""
    last = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    return f"; last log lines: {' | '.join(last)}" if last else ""


@contextlib.contextmanager
def devbox_lock(layout: Layout) -> Iterator[None]:
    """One `up` or `down` at a time (an flock on `<run>/devbox.lock`), waiting up to 15 minutes."""
    layout.run.mkdir(parents=True, exist_ok=True)
    with (layout.run / "devbox.lock").open("w") as handle:
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceError("devbox", f"another devbox command holds {handle.name}") from None
                time.sleep(0.5)
        os.chmod(handle.name, 0o600)
        yield
