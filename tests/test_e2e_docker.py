"""Real images on the project's dockerd: the example across containers, and the superset rule."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flyte_infra import FlyteInfraError
from flyte_infra.artifacts.render import render
from flyte_infra.deploy.preflight import preflight
from flyte_infra.docker.build import build_images
from flyte_infra.errors import LockError
from flyte_infra.loader import load_program
from flyte_infra.packaging.resolve import program_lock
from flyte_infra.runtime.endpoints import endpoint_variable

from .images import build_all, docker, stack_for
from .workers import free_port, post, wait_healthy

pytestmark = pytest.mark.docker

ROOT = Path(__file__).parents[1]


@pytest.fixture
def containers() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "-f", name, check=False)


def run_container(containers: list[str], image: str, environment: str, port: int, **variables: str) -> str:
    name = f"flyte-infra-test-{environment}-{uuid.uuid4().hex[:8]}"
    options = [f"--env={key}={value}" for key, value in variables.items()]
    # as the Deployment runs it: uid 1000, read-only root, a writable /tmp only, no capabilities
    security = ["--user", "1000:1000", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    security += ["--security-opt", "no-new-privileges"]
    docker(
        "run",
        "-d",
        "--network",
        "host",
        "--name",
        name,
        *security,
        *options,
        image,
        "--env",
        environment,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    )
    containers.append(name)
    return name


def test_the_pipeline_calls_across_environment_containers(
    tmp_path: Path, containers: list[str], docker_services
) -> None:
    services = docker_services.environment()
    program = load_program(str(ROOT / "examples" / "ml_pipeline.py"))
    images = build_all(program, stack_for(program, services["FLYTE_INFRA_BASE_IMAGE"]), tmp_path)
    ports = {name: free_port() for name in images}
    endpoints = {endpoint_variable(name): f"http://127.0.0.1:{port}" for name, port in ports.items()}
    names = {env: run_container(containers, images[env], env, ports[env], **endpoints) for env in images}
    for port in ports.values():
        wait_healthy(port, timeout=60)

    status, body, served_by = post(ports["pipeline"], "ml_pipeline", {"size": 5, "epochs": 2}, timeout=120)
    assert (status, served_by) == (200, "pipeline"), body
    assert body["result"] == {"samples": 5.0, "weight": 2.0, "loss": 0.0}
    assert "POST /tasks/load_data" in docker("logs", names["data-prep"]).stderr
    assert "POST /tasks/train" in docker("logs", names["train"]).stderr
    assert "POST /tasks/ml_pipeline" in docker("logs", names["pipeline"]).stderr
    caches = (  # libraries cache under ~ and XDG_CACHE_HOME (Hugging Face, torch): both must be writable
        "import os, pathlib; home = pathlib.Path.home(); cache = pathlib.Path(os.environ['XDG_CACHE_HOME'])\n"
        "cache.joinpath('hub').mkdir(parents=True); home.joinpath('.probe').write_text('ok'); print(home)"
    )
    assert docker("exec", names["train"], "python", "-c", caches).stdout.strip() == "/tmp"

    started = time.monotonic()  # the worker is PID 1: it must handle SIGTERM, not wait for SIGKILL
    docker("stop", "--time", "20", names["train"])
    assert time.monotonic() - started < 10
    assert docker("inspect", "--format", "{{.State.ExitCode}}", names["train"]).stdout.strip() == "0"


def test_an_image_without_the_childs_package_fails_exactly_as_preflight_said(
    tmp_path: Path, containers: list[str], docker_services
) -> None:
    services = docker_services.environment()
    program = load_program(str(ROOT / "tests" / "fixtures" / "superset.py"))
    findings = preflight(program.environments).errors
    assert [(f.environment, f.subject) for f in findings] == [("parent", "package 'six'")]
    assert "missing" in findings[0].message

    images = build_all(program, stack_for(program, services["FLYTE_INFRA_BASE_IMAGE"]), tmp_path)
    child_port = free_port()
    run_container(containers, images["child"], "child", child_port)
    assert wait_healthy(child_port, timeout=60)["tasks"] == ["dump"]

    parent = docker(
        "run",
        "--rm",
        "--network",
        "host",
        images["parent"],
        "--env",
        "parent",
        "--port",
        "0",
        check=False,
        timeout=120,
    )
    assert parent.returncode == 1
    assert parent.stderr.strip().endswith(
        "cannot load 'superset': ModuleNotFoundError: No module named 'six' "
        "(at /opt/flyte-infra/code/superset.py:3)"
    )


def test_build_pushes_by_digest_and_render_pins_those_digests(tmp_path: Path, docker_services) -> None:
    services = docker_services.environment()
    program = load_program(str(ROOT / "examples" / "ml_pipeline.py"))
    settings = stack_for(program, services["FLYTE_INFRA_BASE_IMAGE"])
    references = build_images(program, settings, tmp_path / "build")
    assert set(references) == {"data-prep", "train", "pipeline"}
    lock = program_lock(program, write=False)
    closures = {name: lock.group(name).closures[name] for name in references}
    for name in references:  # one DAG, one base: environments with one closure share one image
        assert (references[name] == references["train"]) == (closures[name] == closures["train"])
    for reference in set(references.values()):
        name = reference.split("@")[0]
        assert name.startswith("127.0.0.1:5000/flyte-infra/environments:sha-")
        manifest = docker("manifest", "inspect", "--insecure", reference, check=False)
        assert manifest.returncode == 0, f"{reference} is not in the registry: {manifest.stderr}"
    render(program, settings, tmp_path / "out", references, lock=lock)
    assert f"image: {references['train']}" in (tmp_path / "out" / "train" / "manifests.yaml").read_text()


def test_a_base_image_the_daemon_cannot_get_stops_the_build_before_any_image(
    tmp_path: Path, docker_services
) -> None:
    services = docker_services.environment()
    program = load_program(str(ROOT / "examples" / "ml_pipeline.py"))
    missing = f"{services['FLYTE_INFRA_REGISTRY']}/flyte-infra/no-such-base:{uuid.uuid4().hex[:8]}"
    with pytest.raises(FlyteInfraError, match=rf"TaskEnvironment 'data-prep': image: cannot get '{missing}'"):
        build_images(program, stack_for(program, missing), tmp_path / "build")
    assert not (tmp_path / "build").exists()  # no build context written, no image built


def test_packages_that_break_what_the_runtime_needs_stop_the_build_before_any_image(
    tmp_path: Path, docker_services
) -> None:
    services = docker_services.environment()
    module = tmp_path / "clash.py"
    module.write_text(  # pydantic>=2.6 needs typing-extensions>=4.6.1: resolving must refuse it
        "import flyte_infra as flyte\n"
        "env = flyte.TaskEnvironment('clash', packages=['typing-extensions==4.5.0'])\n"
    )
    program = load_program(str(module))
    assert preflight(program.environments).ok  # not one of the runtime's own requirements
    with pytest.raises(
        LockError, match=r"'clash': packages cannot be resolved \(typing-extensions==4.5.0 in"
    ):
        build_images(program, stack_for(program, services["FLYTE_INFRA_BASE_IMAGE"]), tmp_path / "build")
    assert not (tmp_path / "build").exists()


def test_flyte_2_code_is_served_by_workers_inside_its_built_images(
    tmp_path: Path, containers: list[str], docker_services
) -> None:
    services = docker_services.environment()
    program = load_program(str(ROOT / "tests" / "fixtures" / "flyte2_pair.py"))
    images = build_all(program, stack_for(program, services["FLYTE_INFRA_BASE_IMAGE"]), tmp_path)
    assert set(images) == {"leaf_env", "root_env"}
    ports = {name: free_port() for name in images}
    endpoints = {endpoint_variable(name): f"http://127.0.0.1:{port}" for name, port in ports.items()}
    for env in images:
        run_container(containers, images[env], env, ports[env], **endpoints)
    for port in ports.values():
        wait_healthy(port, timeout=60)

    status, body, served_by = post(ports["root_env"], "greet", {"name": "flyte"}, timeout=120)
    assert (status, served_by) == (200, "root_env"), body
    assert body["result"] == "hello FLYTE"
