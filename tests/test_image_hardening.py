"""Issue 16, item 4, on the real dockerd: a built worker image gives the worker user nothing to write
outside scratch directories, carries no setuid binary, and its RUN steps use one package index."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from flyte_infra.artifacts.dockerfile import image_spec, write_build_context
from flyte_infra.loader import load_program

from .images import build_all, docker, stack_for

pytestmark = pytest.mark.docker

ROOT = Path(__file__).parents[1]
SCRATCH = ("/tmp", "/var/tmp", "/run/lock", "/home/")
"""What uid 1000 may write in an image (the Deployment mounts the root read-only anyway)."""


@pytest.fixture(scope="module")
def worker_image(docker_services, tmp_path_factory) -> str:
    """The `train` image of the example: the runtime and two packages installed on the base."""
    base = docker_services.environment()["FLYTE_INFRA_BASE_IMAGE"]
    program = load_program(str(ROOT / "examples" / "ml_pipeline.py"))
    return build_all(program, stack_for(program, base), tmp_path_factory.mktemp("build"))["train"]


def run(image: str, *command: str, user: str = "1000:1000") -> str:
    completed = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        user,
        "--entrypoint",
        command[0],
        image,
        *command[1:],
        check=False,
    )
    return completed.stdout


def test_the_worker_user_can_write_nothing_but_scratch_directories_in_a_worker_image(worker_image):
    writable = run(worker_image, "find", "/", "-xdev", "-writable", "-not", "-type", "l").split()
    assert writable, "find printed nothing: the probe itself failed"
    assert [path for path in writable if not path.startswith(SCRATCH)] == []
    probe = (
        "import os, sys, pydantic, six, idna, flyte_infra\n"
        "paths = [p for p in sys.path if os.path.isdir(p)]\n"
        "modules = [m.__file__ for m in (pydantic, six, idna, flyte_infra)]\n"
        "print(len(paths + modules), sum(os.access(p, os.W_OK) for p in paths + modules))"
    )
    checked, writable_count = run(worker_image, "python", "-c", probe).split()
    assert int(checked) >= 8 and writable_count == "0"


def test_a_worker_image_carries_no_setuid_or_setgid_file(worker_image):
    assert run(worker_image, "find", "/", "-xdev", "-type", "f", "-perm", "/6000", user="0:0") == ""
    assert run(worker_image, "find", "/usr/bin", "-name", "python3*", user="0:0"), (
        "the probe found nothing at all"
    )


def test_run_steps_install_from_the_one_configured_index_only(docker_services, tmp_path):
    """A base image that names extra indexes (environment and pip.conf) and a build argument naming a
    closed loopback index: pip must try that index alone, so the build fails instead of installing
    from PyPI through the extra ones."""
    services = docker_services.environment()
    registry = services["FLYTE_INFRA_REGISTRY"]
    noisy_base = f"{registry}/flyte-infra-test/extra-index:{uuid.uuid4().hex[:8]}"
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "Dockerfile").write_text(
        f"FROM {services['FLYTE_INFRA_BASE_IMAGE']}\n"
        "ENV PIP_EXTRA_INDEX_URL=https://pypi.org/simple PIP_FIND_LINKS=https://pypi.org/simple/six/\n"
        "RUN printf '[global]\\nextra-index-url = https://pypi.org/simple\\n' > /etc/pip.conf\n"
    )
    docker("build", "--network", "host", "--quiet", "--tag", noisy_base, str(tmp_path / "base"))
    docker("push", "--quiet", noisy_base)
    program = load_program(str(ROOT / "examples" / "ml_pipeline.py"))
    spec = image_spec(program.environment("train"), program, stack_for(program, noisy_base))
    context = write_build_context(spec, tmp_path / "context")
    closed = "http://127.0.0.1:9/simple"  # the discard port: nothing listens
    failed = docker(
        "build",
        "--network",
        "host",
        "--no-cache",
        "--build-arg",
        f"PIP_INDEX_URL={closed}",
        str(context),
        check=False,
        timeout=600,
    )
    assert failed.returncode != 0
    log = failed.stdout + failed.stderr
    assert "127.0.0.1" in log and "No matching distribution found" in log
    docker("rmi", noisy_base, check=False)
