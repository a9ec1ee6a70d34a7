"""The wheels of package layers: downloaded once from the index into the user's cache, checked
against the lock's SHA-256, and linked into build contexts with the pinned uv beside them.

Builds then run without a network: the wheels and uv are all a package layer needs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import httpx

from ..errors import LockError
from .lock import Layer, LockedPackage, cache_dir
from .resolve import uv_binary

__all__ = ["fetch_wheel", "write_wheels"]


def fetch_wheel(package: LockedPackage, client: httpx.Client | None = None) -> Path:
    """The cached wheel of `package`, downloaded first if need be; LockError if its bytes do not
    match the lock (nothing is kept then)."""
    target = cache_dir("wheels") / package.sha256 / package.filename  # one folder per SHA-256
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    own_client = client is None
    client = client or _client()
    try:
        with client.stream("GET", package.url) as response, partial.open("wb") as out:
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except httpx.HTTPError as error:
        partial.unlink(missing_ok=True)
        raise LockError(
            f"packages: cannot download {package.pin} ({package.url}): {error}", packages=[package.name]
        ) from error
    finally:
        if own_client:
            client.close()
    if digest.hexdigest() != package.sha256:
        partial.unlink(missing_ok=True)
        raise LockError(
            f"packages: {package.filename} from {package.url} does not match the lock's SHA-256; "
            "the index served other bytes than were locked: run `flyte-infra lock` if that is expected",
            packages=[package.name],
        )
    partial.replace(target)
    return target


def write_wheels(layers: Iterable[Layer], context: Path) -> None:
    """Put each layer's wheels, and uv, into `context/wheels/<key>/` (hard links where possible)."""
    uv = uv_binary()
    with _client() as client:
        for layer in layers:
            folder = context / "wheels" / layer.key
            folder.mkdir(parents=True, exist_ok=True)
            wanted = {package.filename for package in layer.packages} | {"uv"}
            for stale in folder.iterdir():
                if stale.name not in wanted:
                    stale.unlink()
            for package in layer.packages:
                _link(fetch_wheel(package, client), folder / package.filename)
            _link(uv, folder / "uv")


def _client() -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(60.0), follow_redirects=True)


def _link(source: Path, target: Path) -> None:
    if target.exists():
        if target.stat().st_size == source.stat().st_size:
            return
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
