"""Where the devbox keeps its sockets, logs, data and build caches (each overridable)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..packaging.lock import cache_dir

__all__ = ["Layout"]


@dataclass(frozen=True)
class Layout:
    """The devbox's folders.

    Args:
        run: sockets, pidfiles, logs and generated configs (`FLYTE_INFRA_RUN`, `/run/flyte-infra`).
        state: docker data, registry storage, etcd data (`FLYTE_INFRA_STATE`, `/var/lib/flyte-infra`).
        cache: built binaries and the base rootfs, kept across runs
            (`$XDG_CACHE_HOME/flyte-infra`, default `~/.cache/flyte-infra`).
    """

    run: Path
    state: Path
    cache: Path

    @classmethod
    def from_environment(cls) -> Layout:
        return cls(
            run=Path(os.environ.get("FLYTE_INFRA_RUN", "/run/flyte-infra")),
            state=Path(os.environ.get("FLYTE_INFRA_STATE", "/var/lib/flyte-infra")),
            cache=cache_dir(),
        )

    @property
    def logs(self) -> Path:
        return self.run / "logs"
