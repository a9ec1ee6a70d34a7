"""The Pulumi toolchain: the CLI, the Python language host and the kubernetes and docker plugins.

None of them is in a registry reachable here, so each one is used as installed when its version is
the pinned one, else built from `../shared/third_party` (upstream source the Go module proxy does
not serve) plus the Go module proxy, following that folder's README, into the user's cache dir.
The plugins are then installed into Pulumi's plugin folder (`PULUMI_HOME`) with
`pulumi plugin install --file`, never put on PATH: a plugin found on PATH overrides the pinned one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServiceError
from .gobuild import GoBinary, GoRecipe, build, copy_tree, go, go_module_dir, tree_digest, wrapper_module
from .layout import Layout
from .report import step

__all__ = ["PLUGINS", "PULUMI_VERSION", "Toolchain", "ensure_toolchain", "find_toolchain", "third_party_dir"]

PULUMI_VERSION = "3.259.0"
PLUGINS = {"kubernetes": "4.32.0", "docker": "5.1.0"}
"""Resource plugins and their versions; the Python SDKs in pyproject.toml are pinned to the same."""

_VERSION_FLAG = "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v" + PULUMI_VERSION
_PLUGIN_VERSION_FLAGS = {
    "kubernetes": "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=",
    "docker": "-X github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version=",
}

OFFLINE_ENVIRONMENT = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
}
"""The engine never reaches for the network: no update check, no plugin download."""


@dataclass(frozen=True)
class Toolchain:
    """A usable Pulumi CLI with its Python host and the pinned plugins.

    Args:
        pulumi: the CLI binary; `pulumi-language-python` is beside it or on PATH.
        bin_dir: a folder to put first on PATH (the CLI and the language host).
    """

    pulumi: Path
    bin_dir: Path

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) with the toolchain first on PATH, offline."""
        variables = dict(os.environ if base is None else base)
        variables["PATH"] = f"{self.bin_dir}{os.pathsep}{variables.get('PATH', '')}"
        return {**variables, **OFFLINE_ENVIRONMENT}


def third_party_dir() -> Path | None:
    """`shared/third_party` beside the checkout (or `FLYTE_INFRA_THIRD_PARTY`), if it exists."""
    override = os.environ.get("FLYTE_INFRA_THIRD_PARTY")
    candidates = [Path(override)] if override else []
    root = Path(__file__).resolve().parents[2]
    candidates += [root.parent / "shared" / "third_party", root / "shared" / "third_party"]
    return next((path for path in candidates if (path / "pulumi-language-python").is_dir()), None)


def find_toolchain(layout: Layout | None = None) -> Toolchain | None:
    """The pinned CLI with its language host, installed or already built into the cache; builds nothing."""
    cli = _installed("pulumi", f"v{PULUMI_VERSION}")
    if cli is not None and shutil.which("pulumi-language-python") is not None:
        return Toolchain(pulumi=cli, bin_dir=cli.parent)
    bin_dir = _cache_bin_dir(layout or Layout.from_environment())
    if (bin_dir / "pulumi").exists() and (bin_dir / "pulumi-language-python").exists():
        return Toolchain(pulumi=bin_dir / "pulumi", bin_dir=bin_dir)
    return None


def _cache_bin_dir(layout: Layout) -> Path:
    return layout.cache / "pulumi" / f"v{PULUMI_VERSION}" / "bin"


def ensure_toolchain(layout: Layout | None = None) -> Toolchain:
    """The pinned toolchain, from what is installed or else built into the cache; says which."""
    layout = layout or Layout.from_environment()
    started = time.monotonic()
    cli = _installed("pulumi", f"v{PULUMI_VERSION}")
    host = shutil.which("pulumi-language-python")
    if cli is not None and host is not None:
        toolchain = Toolchain(pulumi=cli, bin_dir=cli.parent)
        step("pulumi", f"using the installed CLI v{PULUMI_VERSION}: {cli}, language host {host}")
    else:
        toolchain = _build_cli_and_host(layout)
    installed = _installed_plugins(toolchain)
    for name, version in PLUGINS.items():
        if (name, version) in installed:
            step(
                "plugin",
                f"{name} v{version}: installed in Pulumi's plugin folder ({installed[(name, version)]})",
            )
            continue
        binary = build(_plugin_recipe(name, version), layout.cache) / f"pulumi-resource-{name}"
        _run(toolchain, "plugin", "install", "resource", name, f"v{version}", "--file", str(binary))
        step("plugin", f"{name} v{version}: installed from {binary}")
    step("toolchain", f"ready: {toolchain.pulumi}", started)
    return toolchain


def _installed(command: str, version: str) -> Path | None:
    found = shutil.which(command)
    if found is None:
        return None
    completed = subprocess.run(
        [found, "version"], capture_output=True, text=True, env={**os.environ, **OFFLINE_ENVIRONMENT}
    )
    return Path(found) if completed.stdout.strip() == version else None


def _installed_plugins(toolchain: Toolchain) -> dict[tuple[str, str], str]:
    """(name, version) -> when it was installed, for every resource plugin in PULUMI_HOME."""
    listing = json.loads(_run(toolchain, "plugin", "ls", "--json") or "[]")
    return {
        (plugin["name"], plugin["version"].removeprefix("v")): plugin.get("installTime", "")
        for plugin in listing
        if plugin.get("kind") == "resource"
    }


def _run(toolchain: Toolchain, *args: str) -> str:
    completed = subprocess.run(
        [str(toolchain.pulumi), *args], capture_output=True, text=True, env=toolchain.environment()
    )
    if completed.returncode != 0:
        raise ServiceError("pulumi", f"pulumi {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout


def _require_third_party() -> Path:
    source = third_party_dir()
    if source is None:
        raise ServiceError(
            "pulumi",
            f"no Pulumi CLI v{PULUMI_VERSION} with its Python language host is installed, and there is "
            "no ../shared/third_party to build them from (set FLYTE_INFRA_THIRD_PARTY)",
        )
    return source


def _build_cli_and_host(layout: Layout) -> Toolchain:
    source = _require_third_party()
    cli = build(_cli_recipe(), layout.cache)
    host = build(_language_host_recipe(source), layout.cache)
    bin_dir = _cache_bin_dir(layout)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for folder, name in [
        (cli, "pulumi"),
        (host, "pulumi-language-python"),
        (host, "pulumi-language-python-exec"),
    ]:
        # real files, not symlinks: the CLI finds its language host beside its own resolved path
        target = bin_dir / name
        target.unlink(missing_ok=True)
        os.link(folder / name, target)
    step("pulumi", f"using CLI and language host v{PULUMI_VERSION} from {bin_dir}")
    return Toolchain(pulumi=bin_dir / "pulumi", bin_dir=bin_dir)


def _cli_recipe() -> GoRecipe:
    package = "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
    return GoRecipe(
        key=f"pulumi-cli-v{PULUMI_VERSION}",
        binaries=(GoBinary("pulumi", package, _VERSION_FLAG),),
        prepare=wrapper_module(
            "flyte-infra.local/pulumi-cli",
            requires=[f"github.com/pulumi/pulumi/pkg/v3@v{PULUMI_VERSION}"],
            # upstream's own replace: the original module no longer builds
            replaces=[
                "github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e"
            ],
            imports=[package],
        ),
    )


def _language_host_recipe(source: Path) -> GoRecipe:
    folder = source / "pulumi-language-python"

    def prepare(work: Path) -> None:
        copy_tree(folder, work)
        sdk, pkg = "github.com/pulumi/pulumi/sdk/v3", "github.com/pulumi/pulumi/pkg/v3"
        go(
            [
                "mod",
                "edit",
                f"-dropreplace={pkg}",
                f"-dropreplace={sdk}",
                f"-require={pkg}@v{PULUMI_VERSION}",
                f"-require={sdk}@v{PULUMI_VERSION}",
            ],
            cwd=work,
        )

    def place_exec(work: Path, bin_dir: Path) -> None:
        # The host runs the program through this script, shipped in the SDK module.
        sdk = go_module_dir("github.com/pulumi/pulumi/sdk/v3", f"v{PULUMI_VERSION}", work)
        target = bin_dir / "pulumi-language-python-exec"
        shutil.copyfile(sdk / "python" / "cmd" / "pulumi-language-python-exec", target)
        target.chmod(0o755)

    return GoRecipe(
        key=f"pulumi-language-python-v{PULUMI_VERSION}",
        binaries=(GoBinary("pulumi-language-python", ".", _VERSION_FLAG),),
        prepare=prepare,
        inputs=(tree_digest(folder),),
        extras=place_exec,
    )


def _plugin_recipe(name: str, version: str) -> GoRecipe:
    source = _require_third_party()
    folder = source / f"pulumi-{name}" / "src"
    binary = GoBinary(
        f"pulumi-resource-{name}", f"./cmd/pulumi-resource-{name}", _PLUGIN_VERSION_FLAGS[name] + version
    )

    def prepare_kubernetes(work: Path) -> None:
        copy_tree(folder / "provider", work)
        # the proxy refuses the pinned pseudo-version of fluxcd/pkg/ssa; v0.72.0 is the next release
        go(
            [
                "mod",
                "edit",
                "-dropreplace=github.com/pulumi/pulumi-kubernetes/sdk/v4",
                "-require=github.com/fluxcd/pkg/ssa@v0.72.0",
            ],
            cwd=work,
        )
        go(["run", "generate.go"], cwd=work / "cmd" / "pulumi-resource-kubernetes", env={"VERSION": version})

    def prepare_docker(work: Path) -> None:
        copy_tree(folder, work)  # provider/ builds on ../upstream, patched first
        for patch in sorted((work / "patches").glob("*.patch")):
            with patch.open() as diff:
                subprocess.run(["patch", "-p1", "--quiet"], cwd=work / "upstream", stdin=diff, check=True)
        # main.go embeds schema-embed.json, which its go:generate step writes from schema.json
        go(
            ["run", "./generate.go"],
            cwd=work / "provider" / "cmd" / "pulumi-resource-docker",
            env={"VERSION": version},
        )

    if name == "kubernetes":
        prepare, subdir = prepare_kubernetes, ""
    else:
        prepare, subdir = prepare_docker, "provider"
    return GoRecipe(
        key=f"pulumi-resource-{name}-v{version}",
        binaries=(binary,),
        prepare=prepare,
        inputs=(tree_digest(folder),),
        subdir=subdir,
    )
