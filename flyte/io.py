"""`flyte.io`: File and Dir as local paths. A task's File/Dir travels as its path (JSON), so between
workers it must name storage both can read (a shared volume); Flyte's blob store uploads are not
done here."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any, Generic, Self, TypeVar

from pydantic import BaseModel

__all__ = ["DataFrame", "Dir", "File"]

T = TypeVar("T")


class _ByPath(BaseModel):
    """A file or directory by path, and Flyte's constructors of one."""

    path: str
    name: str | None = None
    format: str = ""

    @classmethod
    def from_local_sync(cls, local_path: str | Path, remote_destination: str | None = None, **_: Any) -> Self:
        return cls(path=str(Path(local_path).resolve()), name=Path(local_path).name)

    @classmethod
    async def from_local(
        cls, local_path: str | Path, remote_destination: str | None = None, **_: Any
    ) -> Self:
        return cls.from_local_sync(local_path, remote_destination)

    @classmethod
    def from_existing_remote(cls, remote_path: str, **_: Any) -> Self:
        return cls(path=remote_path, name=Path(remote_path).name)

    async def exists(self) -> bool:
        return self.exists_sync()

    def exists_sync(self) -> bool:
        return Path(self.path).exists()

    async def download(self, local_path: str | Path | None = None) -> str:
        return self.download_sync(local_path)

    def download_sync(self, local_path: str | Path | None = None) -> str:
        raise NotImplementedError


class File(_ByPath, Generic[T]):
    """A file by path (`path`), as Flyte's File."""

    @classmethod
    def new_remote(cls, file_name: str | None = None, **_: Any) -> File[T]:
        directory = tempfile.mkdtemp(prefix="flyte-file-")
        return cls(path=os.path.join(directory, file_name or "file"), name=file_name)

    @contextlib.contextmanager
    def open_sync(self, mode: str = "rb", **_: Any) -> Iterator[IO[Any]]:
        with open(self.path, mode) as handle:
            yield handle

    @contextlib.asynccontextmanager
    async def open(self, mode: str = "rb", **_: Any) -> AsyncIterator[IO[Any]]:
        with open(self.path, mode) as handle:
            yield handle

    def download_sync(self, local_path: str | Path | None = None) -> str:
        if local_path is None:
            return self.path
        shutil.copyfile(self.path, local_path)
        return str(local_path)


class Dir(_ByPath, Generic[T]):
    """A directory by path, as Flyte's Dir."""

    def walk_sync(self, recursive: bool = True, **_: Any) -> Iterator[File[Any]]:
        pattern = "**/*" if recursive else "*"
        for path in sorted(Path(self.path).glob(pattern)):
            if path.is_file():
                yield File(path=str(path), name=path.name)

    async def walk(self, recursive: bool = True, **_: Any) -> AsyncIterator[File[Any]]:
        for file in self.walk_sync(recursive):
            yield file

    def list_files_sync(self) -> list[File[Any]]:
        return list(self.walk_sync(recursive=False))

    async def list_files(self) -> list[File[Any]]:
        return self.list_files_sync()

    def exists_sync(self) -> bool:
        return Path(self.path).is_dir()

    def download_sync(self, local_path: str | Path | None = None) -> str:
        if local_path is None:
            return self.path
        shutil.copytree(self.path, local_path, dirs_exist_ok=True)
        return str(local_path)


class DataFrame(BaseModel):
    """Flyte's DataFrame reference; only its `uri` is kept here."""

    uri: str | None = None
    format: str = ""
