"""`flyte.report`: Flyte's HTML task reports. Accepted without effect here (no report is stored:
the worker answers with the task's result only); `log`/`replace` keep the text for `get_tab`."""

from __future__ import annotations

from typing import Any

__all__ = ["Report", "Tab", "current_report", "flush", "get_tab", "log", "replace"]


class Tab:
    def __init__(self, name: str) -> None:
        self.name = name
        self.content: list[str] = []

    def log(self, content: str) -> None:
        self.content.append(content)

    def replace(self, content: str) -> None:
        self.content = [content]

    def get_html(self) -> str:
        return "\n".join(self.content)


class Report:
    def __init__(self) -> None:
        self.tabs: dict[str, Tab] = {"main": Tab("main")}

    def get_tab(self, name: str, create_if_missing: bool = True) -> Tab:
        return self.tabs.setdefault(name, Tab(name))


_REPORT = Report()


def current_report() -> Report:
    return _REPORT


def get_tab(name: str, /, create_if_missing: bool = True) -> Tab:
    return _REPORT.get_tab(name, create_if_missing)


def log(content: str, do_flush: bool = False) -> None:
    get_tab("main").log(content)


def replace(content: str, do_flush: bool = False) -> None:
    get_tab("main").replace(content)


def flush(*_: Any) -> None:
    """No effect: reports are not published here."""


log.aio = replace.aio = flush.aio = None  # type: ignore[attr-defined]  # set below


async def _log_aio(content: str, do_flush: bool = False) -> None:
    log(content)


async def _replace_aio(content: str, do_flush: bool = False) -> None:
    replace(content)


async def _flush_aio(*_: Any) -> None:
    flush()


log.aio, replace.aio, flush.aio = _log_aio, _replace_aio, _flush_aio  # type: ignore[attr-defined]
