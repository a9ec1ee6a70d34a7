"""Issue 16, item 4, on the real dockerd: a built worker image gives the worker user nothing to write
outside scratch directories, carries no setuid binary, and its RUN steps reach no network."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from pathlib import Path

import pytest

from flyte_infra.artifacts.dockerfile import image_spec
from flyte_infra.docker.build import build_image
from flyte_infra.errors import ImageBuildError
from flyte_infra.loader import load_program
from flyte_infra.packaging.resolve import program_lock

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


def test_no_run_step_of_a_build_reaches_the_network(docker_services, tmp_path):
    """Package layers install from wheels in the build context, so images build with no network: a
    RUN step appended to a worker's Dockerfile cannot reach a listener on the build machine's
    loopback, which the same step reaches when the build is given the host network (the control)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    program = load_program(str(ROOT / "examples" / "ml_pipeline.py"))
    settings = stack_for(program, docker_services.environment()["FLYTE_INFRA_BASE_IMAGE"])
    lock = program_lock(program, write=False)
    spec = image_spec(program.environment("train"), program, settings, lock)
    assert {image_spec(env, program, settings, lock).network for env in program.environments} == {"none"}
    probe = f"RUN python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)\"\n"
    dockerfile = spec.dockerfile.replace("COPY runtime/", probe + "COPY runtime/", 1)
    assert dockerfile != spec.dockerfile
    with listener:
        outcomes = {}
        for network in ("none", "host"):
            probing = dataclasses.replace(
                spec,
                dockerfile=dockerfile,
                files={**spec.files, "Dockerfile": dockerfile.encode()},
                tag=f"{spec.tag}-{network}-{uuid.uuid4().hex[:6]}",
                network=network,
            )
            try:
                outcomes[network] = build_image(probing, settings, tmp_path, push=False)
            except ImageBuildError as error:
                outcomes[network] = error
    assert isinstance(outcomes["none"], ImageBuildError)
    assert "socket.create_connection" in str(outcomes["none"])  # the probe's step is what failed
    assert isinstance(outcomes["host"], str)  # the probe itself works when there is a network
    docker("rmi", outcomes["host"], check=False)
