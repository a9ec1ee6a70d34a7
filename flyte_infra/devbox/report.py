"""One line per step on stderr, with how long the step took."""

from __future__ import annotations

import sys
import time

__all__ = ["step"]


def step(what: str, detail: str, started: float | None = None) -> None:
    """Print `==> what  detail [elapsed]` on stderr, so stdout stays for what a shell evals.

    `started` is a `time.monotonic()` reading.
    """
    elapsed = f" [{time.monotonic() - started:.1f}s]" if started is not None else ""
    print(f"==> {what:<10} {detail}{elapsed}", file=sys.stderr, flush=True)
