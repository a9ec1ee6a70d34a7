"""`flyte.Image`: Flyte 2's image builder, recorded as the layers of an environment's image build.

An `Image` is immutable: every `with_*` returns a new one. `TaskEnvironment(image=...)` takes its
base reference as the environment's `image`, its pip packages and requirements as the environment's
`packages` (so preflight's package coverage reads them), and the other layers (apt packages,
commands, environment variables, source files, the workdir) become lines of the Dockerfile
(`flyte_infra.artifacts.dockerfile`). A builder method flyte-infra does not support raises
`UnsupportedFeatureError` naming it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ..errors import UnsupportedFeatureError
from .validation import image_reference

__all__ = ["Image", "Layer"]

_APT_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*(?:[=:][A-Za-z0-9.+~:-]+)?")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One step of an image build.

    kind: `apt` (values: package names), `pip` (requirement lines), `commands` (shell lines), `env`
    (NAME=value pairs), `copy` (values: the image path and `file` or `folder`;
    `files`: relative path -> content), `workdir`.
    """

    kind: str
    values: tuple[str, ...] = ()
    files: tuple[tuple[str, bytes], ...] = ()


def _unsupported(method: str, reason: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError(f"flyte.Image.{method}", reason)


def _no_secret_mounts(method: str, secret_mounts: Any) -> None:
    if secret_mounts:
        raise _unsupported(
            f"{method}(secret_mounts=...)", "image builds here get no secrets; bake credentials into a base"
        )


@dataclasses.dataclass(frozen=True)
class Image:
    """A container image as Flyte's builder describes it: a base and layers.

    Build one with `Image.from_debian_base(...)` or `Image.from_base(uri)` and the `with_*` methods.
    `name`, `registry` and `registry_secret` are accepted and have no effect: the stack's settings
    name the registry and the content hash names the image.
    """

    base: str
    layers: tuple[Layer, ...] = ()
    name: str | None = None
    ref_name: str | None = None
    """Set by `from_ref_name` when Flyte's config does not name the image: preflight reports it."""

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_debian_base(
        cls,
        python_version: tuple[int, int] | None = None,
        flyte_version: str | None = None,
        install_flyte: bool = True,
        registry: str | None = None,
        registry_secret: Any = None,
        name: str | None = None,
        platform: Any = None,
    ) -> Image:
        """`python:X.Y-slim-bookworm`; X.Y defaults to this interpreter's, as in Flyte. flyte-infra's
        own runtime (which provides `flyte`) is always installed, so `install_flyte` has no effect."""
        major, minor = python_version or sys.version_info[:2]
        return cls(base=f"python:{major}.{minor}-slim-bookworm", name=name)

    @classmethod
    def from_base(cls, image_uri: str) -> Image:
        """An existing image with Python (3.11 or later) to build on."""
        try:
            return cls(base=image_reference(image_uri))
        except ValueError as error:
            raise UnsupportedFeatureError(f"flyte.Image.from_base({image_uri!r:.80})", str(error)) from None

    @classmethod
    def from_ref_name(cls, name: str | None = None) -> Image:
        """The image Flyte's config names (`images:` in $FLYTECTL_CONFIG, ./.flyte/config.yaml or
        ~/.flyte/config.yaml). Unnamed there, the image is unresolved: preflight reports an error."""
        key = name or "default"
        uri = _configured_images().get(key)
        if uri is None:
            return cls(base=DEFAULT_BASE, ref_name=key)
        return cls.from_base(uri)

    @classmethod
    def from_dockerfile(cls, file: Any, registry: Any = None, name: Any = None, **_: Any) -> Image:
        raise _unsupported("from_dockerfile", "use Image.from_base(uri) and the with_* methods")

    @classmethod
    def from_uv_script(
        cls,
        script: str | Path,
        *,
        name: str | None = None,
        python_version: tuple[int, int] | None = None,
        **_: Any,
    ) -> Image:
        """A Debian base with the dependencies of the script's PEP 723 header (`# /// script`)."""
        dependencies = _script_dependencies(Path(script))
        return cls.from_debian_base(python_version=python_version, name=name).with_pip_packages(*dependencies)

    # -- layers ---------------------------------------------------------------------------------
    def _with(self, layer: Layer) -> Image:
        return dataclasses.replace(self, layers=(*self.layers, layer))

    def with_pip_packages(
        self,
        *packages: str,
        index_url: str | None = None,
        extra_index_urls: str | Sequence[str] | None = None,
        pre: bool = False,
        extra_args: str | None = None,
        secret_mounts: Any = None,
    ) -> Image:
        """pip requirement lines, installed with the runtime's (preflight checks them)."""
        _no_secret_mounts("with_pip_packages", secret_mounts)
        for option, value in (
            ("index_url", index_url),
            ("extra_index_urls", extra_index_urls),
            ("pre", pre),
            ("extra_args", extra_args),
        ):
            if value:
                raise _unsupported(f"with_pip_packages({option}=...)", "only requirement lines are installed")
        return self._with(Layer("pip", tuple(map(str, packages))))

    def with_requirements(self, file: str | Path, secret_mounts: Any = None) -> Image:
        """The requirement lines of a requirements file, read now (relative to the working directory)."""
        _no_secret_mounts("with_requirements", secret_mounts)
        return self._with(Layer("pip", _requirement_lines(Path(file))))

    def with_uv_project(self, pyproject_file: str | Path, uvlock: Any = None, **_: Any) -> Image:
        """The `[project] dependencies` of a pyproject.toml (the lock file is not read)."""
        try:
            project = tomllib.loads(Path(pyproject_file).read_text()).get("project", {})
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise _unsupported("with_uv_project", f"cannot read {pyproject_file}: {error}") from None
        return self._with(Layer("pip", tuple(project.get("dependencies", []))))

    def with_apt_packages(self, *packages: str, secret_mounts: Any = None) -> Image:
        """Debian packages, installed with apt-get as root before the runtime."""
        _no_secret_mounts("with_apt_packages", secret_mounts)
        for package in packages:
            if not isinstance(package, str) or not _APT_PACKAGE.fullmatch(package):
                raise _unsupported(f"with_apt_packages({package!r:.60})", "not a Debian package name")
        return self._with(Layer("apt", tuple(packages)))

    def with_commands(self, commands: Sequence[str] | str, secret_mounts: Any = None) -> Image:
        """Shell lines, each a RUN of the Dockerfile (as the worker's user, after the packages)."""
        _no_secret_mounts("with_commands", secret_mounts)
        lines = [commands] if isinstance(commands, str) else list(commands)
        for line in lines:
            if not isinstance(line, str) or "\n" in line:
                raise _unsupported("with_commands", f"{line!r:.60} is not one shell line")
        return self._with(Layer("commands", tuple(lines)))

    def with_env_vars(self, env_vars: Mapping[str, str]) -> Image:
        """Environment variables of the image (ENV)."""
        pairs = []
        for key, value in env_vars.items():
            if not _ENV_VAR.fullmatch(str(key)) or "\n" in str(value):
                raise _unsupported("with_env_vars", f"{key!r:.60}={value!r:.60} is not a variable")
            pairs.append(f"{key}={value}")
        return self._with(Layer("env", tuple(pairs)))

    def with_workdir(self, workdir: str) -> Image:
        """The image's working directory (WORKDIR); relative source destinations go under it."""
        if not PurePosixPath(workdir).is_absolute() or "\n" in workdir:
            raise _unsupported(f"with_workdir({workdir!r:.60})", "give an absolute path")
        return self._with(Layer("workdir", (workdir,)))

    def with_source_file(self, src: str | Path, dst: str = ".") -> Image:
        """One file copied into the image (to `dst`, relative to the workdir)."""
        path = Path(src)
        if not path.is_file():
            raise _unsupported(f"with_source_file({str(src)!r:.80})", "no such file")
        destination = dst if not dst.endswith("/") and dst != "." else f"{dst.rstrip('/')}/{path.name}"
        return self._with(Layer("copy", (destination, "file"), ((path.name, path.read_bytes()),)))

    def with_source_folder(self, src: str | Path, dst: str = ".", copy_contents_only: bool = False) -> Image:
        """A folder copied into the image (hidden files and __pycache__ left out)."""
        root = Path(src)
        if not root.is_dir():
            raise _unsupported(f"with_source_folder({str(src)!r:.80})", "no such folder")
        files = tuple(
            (path.relative_to(root).as_posix(), path.read_bytes())
            for path in sorted(root.rglob("*"))
            if path.is_file()
            and not any(
                part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts
            )
        )
        destination = dst if copy_contents_only else f"{dst.rstrip('/')}/{root.name}"
        return self._with(Layer("copy", (destination, "folder"), files))

    def with_local_v2(self) -> Image:
        """No effect: the image carries flyte-infra's runtime, which provides `flyte`."""
        return self

    def with_code_bundle(self, *_: Any, **__: Any) -> Image:
        """No effect: the image always carries the user's code."""
        return self

    def with_dockerignore(self, path: Any) -> Image:
        """No effect: only the module's own code and the listed source files are copied."""
        return self

    def clone(
        self,
        registry: str | None = None,
        registry_secret: Any = None,
        name: str | None = None,
        base_image: str | None = None,
        python_version: tuple[int, int] | None = None,
        addl_layer: Any = None,
        extendable: bool = False,
    ) -> Image:
        """A copy (`name`/`registry` have no effect; the stack names the registry)."""
        if base_image or python_version or addl_layer:
            raise _unsupported("clone(base_image/python_version/addl_layer=...)", "build a new Image instead")
        return dataclasses.replace(self, name=name or self.name)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        raise _unsupported(attribute, "this builder method has no flyte-infra equivalent")

    # -- what the environment reads ------------------------------------------------------------
    @property
    def pip_packages(self) -> tuple[str, ...]:
        """Every requirement line of the pip and requirements layers, in order."""
        return tuple(line for layer in self.layers if layer.kind == "pip" for line in layer.values)

    @property
    def build_layers(self) -> tuple[Layer, ...]:
        """The layers other than pip's, in order (pip packages go with the environment's)."""
        return tuple(layer for layer in self.layers if layer.kind != "pip")


DEFAULT_BASE = "python:3.11-slim-bookworm"


def _configured_images() -> dict[str, str]:
    """The `images:` map of the first Flyte config file found, as Flyte's config search finds it."""
    candidates = [os.environ.get("FLYTECTL_CONFIG"), ".flyte/config.yaml", "~/.flyte/config.yaml"]
    for candidate in candidates:
        path = Path(candidate).expanduser() if candidate else None
        if path is not None and path.is_file():
            try:
                images = yaml.safe_load(path.read_text()).get("images") or {}
            except (OSError, yaml.YAMLError, AttributeError):
                return {}
            return {str(key): str(value) for key, value in images.items()}
    return {}


def _requirement_lines(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text()
    except OSError as error:
        raise _unsupported(f"with_requirements({str(path)!r:.80})", error.strerror or "unreadable") from None
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise _unsupported(f"with_requirements: option line {line!r:.60}", "give requirement lines only")
        lines.append(line)
    return tuple(lines)


def _script_dependencies(script: Path) -> Iterable[str]:
    """The `dependencies` of a PEP 723 `# /// script` block."""
    try:
        text = script.read_text()
    except OSError as error:
        raise _unsupported(f"from_uv_script({str(script)!r:.80})", error.strerror or "unreadable") from None
    block = re.search(r"(?m)^# /// script\s*$\n((?:^#(?: .*)?$\n)+?)^# ///\s*$", text)
    if block is None:
        return ()
    content = "\n".join(line[2:] if line.startswith("# ") else "" for line in block[1].splitlines())
    try:
        return tuple(tomllib.loads(content).get("dependencies", []))
    except tomllib.TOMLDecodeError as error:
        raise _unsupported("from_uv_script", f"the script header is not TOML: {error}") from None
