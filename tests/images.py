"""Build and run the project's real images on the project's dockerd (tests and benchmarks)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name

from flyte_infra.artifacts.dockerfile import image_spec
from flyte_infra.deploy.settings import StackSettings
from flyte_infra.docker.build import build_image
from flyte_infra.loader import Program
from flyte_infra.packaging.resolve import program_lock


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def stack_for(program: Program, base_image: str) -> StackSettings:
    """A stack whose environments build FROM the local debootstrap base."""
    return StackSettings.from_config(
        {"module": program.module_name, "baseImages": {"python:3.11-slim-bookworm": base_image}}, stack="test"
    )


def build_all(program: Program, settings: StackSettings, workdir: Path) -> dict[str, str]:
    """Image name of every environment, built (not pushed) as the Pulumi component would; identical
    specs are built once. Unlike `flyte_infra.docker.build.build_images`, no preflight: tests build broken
    programs on purpose."""
    built: dict[str, str] = {}
    names = {}
    lock = program_lock(program, write=False)
    for environment in program.environments:
        spec = image_spec(environment, program, settings, lock)
        if spec.tag not in built:
            built[spec.tag] = build_image(spec, settings, workdir, push=False)
        names[environment.name] = built[spec.tag]
    return names


def manifest_layers(reference: str) -> list[str]:
    """The layer blob digests of `registry/repo:tag@sha256:...`, as the registry on loopback holds them."""
    name, digest = reference.split("@")
    registry, repository = name.rsplit(":", 1)[0].split("/", 1)
    accept = (
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    )
    response = httpx.get(f"http://{registry}/v2/{repository}/manifests/{digest}", headers={"Accept": accept})
    response.raise_for_status()
    return [layer["digest"] for layer in response.json()["layers"]]


def installed_versions(image: str) -> dict[str, str]:
    """Name -> version of every distribution installed in `image`'s package layers."""
    probe = (
        "import importlib.metadata as m, json, sys\n"
        "dists = m.distributions(path=[p for p in sys.path if p.startswith('/opt/flyte-infra/site/')])\n"
        "print(json.dumps({d.metadata['Name']: d.version for d in dists}))"
    )
    output = docker("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", probe).stdout
    return {canonicalize_name(name): version for name, version in json.loads(output).items()}
