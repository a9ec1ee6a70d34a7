"""Issue 17, items 3 and 4: the Image builder becomes the image build; task and environment options."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest

import flyte
from flyte_infra.artifacts.dockerfile import image_spec
from flyte_infra.artifacts.manifests import environment_manifests
from flyte_infra.deploy.graph import build_graph
from flyte_infra.deploy.preflight import preflight
from flyte_infra.errors import InvalidSpecError, TaskTimeoutError, UnsupportedFeatureError
from flyte_infra.loader import load_program
from flyte_infra.runtime.routing import WorkerRouter

from ..locks import fake_lock
from ..stacks import stack
from .helpers import MODULES, load_source


@pytest.fixture(scope="module")
def pipeline():
    return load_program(str(MODULES / "pipeline_flyte2.py"))


def test_the_image_builder_becomes_the_dockerfile_of_the_environment(pipeline):
    lock = fake_lock(pipeline.environments)
    spec = image_spec(pipeline.environment("data_prep"), pipeline, stack(), lock)
    lines = spec.dockerfile.splitlines()
    assert lines[1] == "FROM python:3.12-slim-bookworm"
    apt = next(i for i, line in enumerate(lines) if line.startswith("RUN apt-get update"))
    assert lines[apt].startswith("RUN apt-get update && apt-get install -y --no-install-recommends git curl")
    [layer] = spec.layers
    packages = lines.index(next(line for line in lines if f"source=wheels/{layer.key}," in line))
    assert lines[packages].startswith("RUN --mount=type=bind,") and "pyyaml==1.0" in lines[packages - 1]
    assert apt < packages < lines.index("ENV MODE=test")  # system packages first, then Python's
    assert spec.network == "host"  # apt and the image's commands need it; package layers do not
    trainer = image_spec(pipeline.environment("trainer_gpu"), pipeline, stack(), lock)
    assert "# numpy==1.0" in trainer.dockerfile.splitlines()  # with_pip_packages
    assert "ENV MODE=test" in lines
    assert "RUN echo built > /tmp/built" in lines
    assert "WORKDIR /app" in lines
    assert lines.index("WORKDIR /app") < lines.index("USER 1000:1000")


def test_source_files_and_folders_are_copied_into_the_build_context(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.yaml").write_text("a: 1\n")
    (tmp_path / "run.sh").write_text("echo\n")
    image = (
        flyte.Image.from_base("python:3.12-slim")
        .with_source_folder(tmp_path / "conf", "/etc/app")
        .with_source_file(tmp_path / "run.sh", "/usr/local/bin/")
    )
    environment = flyte.TaskEnvironment("with_sources", image=image)
    program = load_source(tmp_path, "import flyte\nenv = flyte.TaskEnvironment('placeholder')\n")
    spec = image_spec(environment, program, stack(), fake_lock([environment]))
    assert "COPY source/0/ /etc/app/conf" in spec.dockerfile
    assert "COPY source/1/run.sh /usr/local/bin/run.sh" in spec.dockerfile
    assert spec.files["source/0/a.yaml"] == b"a: 1\n"


def test_preflight_package_coverage_reads_the_images_pip_packages_and_requirements(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nrequests==2.32.3\n")
    child = flyte.TaskEnvironment(
        "child_env", image=flyte.Image.from_debian_base().with_requirements(requirements)
    )
    parent = flyte.TaskEnvironment(
        "parent_env", image=flyte.Image.from_debian_base().with_pip_packages("pyyaml"), depends_on=[child]
    )
    assert child.packages == ["requests==2.32.3"]
    messages = [str(finding) for finding in preflight([parent]).errors]
    assert any("parent_env: package 'requests'" in message for message in messages)


@pytest.mark.parametrize(
    ("build", "feature"),
    [
        (lambda: flyte.Image.from_dockerfile("Dockerfile"), "flyte.Image.from_dockerfile"),
        (lambda: flyte.Image.from_debian_base().with_poetry_project("p"), "flyte.Image.with_poetry_project"),
        (
            lambda: flyte.Image.from_debian_base().with_pip_packages("x", secret_mounts=["s"]),
            r"flyte.Image.with_pip_packages\(secret_mounts=...\)",
        ),
    ],
)
def test_an_unsupported_builder_method_is_a_one_line_error_naming_it(build, feature):
    with pytest.raises(
        UnsupportedFeatureError, match=rf"^{feature}.*is not supported by flyte-infra: [^\n]*$"
    ):
        build()


def test_an_image_from_a_ref_name_missing_from_flytes_config_is_a_preflight_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    environment = flyte.TaskEnvironment("by_ref", image=flyte.Image.from_ref_name("gpu_image"))
    assert [finding.subject for finding in preflight([environment]).errors] == ["image"]
    (tmp_path / ".flyte").mkdir()
    (tmp_path / ".flyte" / "config.yaml").write_text("images:\n  gpu_image: ghcr.io/acme/gpu:1\n")
    resolved = flyte.TaskEnvironment("by_ref_2", image=flyte.Image.from_ref_name("gpu_image"))
    assert resolved.image == "ghcr.io/acme/gpu:1"
    assert preflight([resolved]).ok


def test_retries_are_honoured_in_process(pipeline):
    module = __import__(pipeline.module_name)
    module.attempts.clear()
    assert flyte.run(module.flaky, 4).outputs() == (40,)
    assert module.attempts["flaky"] == 3


def test_retries_run_out_and_the_last_exception_is_raised(pipeline):
    module = __import__(pipeline.module_name)
    module.attempts.clear()
    with pytest.raises(RuntimeError, match="attempt 2 fails"):
        flyte.run(module.flaky.override(retries=1), 4)


def test_a_timeout_stops_an_async_task_in_process(pipeline):
    module = __import__(pipeline.module_name)
    with pytest.raises(
        TaskTimeoutError, match=r"task 'data_prep.slow' did not finish within its timeout of 0.2 s"
    ):
        flyte.run(module.slow, 5.0)
    assert flyte.run(module.slow, 0.01).outputs() == (0.01,)


def test_a_timeout_bounds_a_sync_task_in_process():
    env = flyte.TaskEnvironment("sync_timeout")

    @env.task(timeout=timedelta(seconds=0.1))
    def sleepy() -> int:
        time.sleep(1)
        return 1

    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        flyte.run(sleepy)
    assert time.monotonic() - started < 0.9


def test_a_worker_applies_retries_and_timeout_to_the_tasks_it_serves():
    env = flyte.TaskEnvironment("served_env")
    calls = []

    @env.task(retries=flyte.RetryStrategy(2, flyte.Backoff(base=timedelta(0), factor=2)))
    def once_flaky() -> int:
        calls.append(1)
        if len(calls) < 2:
            raise ValueError("first attempt fails")
        return len(calls)

    @env.task(timeout=0.05)
    async def hangs() -> None:
        await asyncio.sleep(5)

    router = WorkerRouter("served_env")
    assert router.call(once_flaky, (), {}) == 2
    with pytest.raises(TaskTimeoutError):
        asyncio.run(router.call(hangs, (), {}))


def test_reuse_policy_sets_replicas_and_the_workers_concurrency(pipeline):
    environment = pipeline.environment("data_prep")
    graph = build_graph(pipeline.environments)
    deployment = environment_manifests(environment, graph, stack(), "img")[1]
    assert deployment["spec"]["replicas"] == 2
    variables = {
        v["name"]: v.get("value") for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert variables["FLYTE_INFRA_MAX_TASKS"] == "3"


def test_a_pod_template_is_merged_into_the_pod_spec(pipeline):
    graph = build_graph(pipeline.environments)
    template = environment_manifests(pipeline.environment("trainer_gpu"), graph, stack(), "img")[1]["spec"][
        "template"
    ]
    assert template["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert template["spec"]["terminationGracePeriodSeconds"] == 120
    assert template["metadata"]["labels"]["team"] == "ml"
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize(
    ("pod_spec", "field"),
    [
        ({"hostNetwork": True}, "pod_spec.hostNetwork"),
        ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, r"pod_spec.volumes\[0\].hostPath"),
        (
            {"containers": [{"name": "primary", "securityContext": {"privileged": True}}]},
            r"pod_spec.containers\[0\].securityContext",
        ),
    ],
)
def test_a_pod_template_that_would_break_pod_security_restricted_is_refused(pod_spec, field):
    with pytest.raises(
        InvalidSpecError, match=rf"'templated': pod_template: PodTemplate {field}.*'restricted'"
    ):
        flyte.TaskEnvironment("templated", pod_template=flyte.PodTemplate(pod_spec=pod_spec))


def test_flyte_task_options_are_accepted_and_unknown_ones_refused():
    env = flyte.TaskEnvironment("options_env", cache="auto", queue="q", interruptible=True)

    @env.task(short_name="s", cache="disable", docs="d", report=True, queue="q", triggers=(), entrypoint=True)
    def accepted() -> int:
        return 1

    assert accepted.options["short_name"] == "s"
    with pytest.raises(InvalidSpecError, match=r"unknown option\(s\) colour"):
        env.task(colour="red")
    with pytest.raises(UnsupportedFeatureError, match="plugin_config"):
        flyte.TaskEnvironment("plugged", plugin_config=object())


def test_secrets_may_be_one_secret_or_a_string():
    assert [
        s.key for s in flyte.TaskEnvironment("one_secret", secrets=flyte.Secret("GITHUB_PAT")).secrets
    ] == ["GITHUB_PAT"]
    assert [s.env_var for s in flyte.TaskEnvironment("str_secret", secrets="api_key").secrets] == ["API_KEY"]
    grouped = flyte.Secret(group="my_group", key="token")
    assert grouped.secret_name == "my-group"


def test_clone_with_takes_the_name_positionally_and_keeps_the_image_build(pipeline):
    clone = pipeline.environment("data_prep").clone_with("data_prep_2", reusable=None)
    assert clone.image_layers == pipeline.environment("data_prep").image_layers
    assert clone.packages == ["pyyaml>=6"]
    assert clone.reusable is None


def test_a_worker_process_loads_a_flyte2_module_and_honours_retries_and_timeout(worker):
    from ..workers import free_port, post, wait_healthy

    port = free_port()
    worker(str(MODULES / "pipeline_flyte2.py"), "data_prep", port)
    wait_healthy(port)
    status, body, served_by = post(port, "flaky", {"x": 4})
    assert (status, body["result"], served_by) == (200, 40, "data_prep")
    status, body, _ = post(port, "slow", {"seconds": 5.0})
    assert status != 200
    assert "TaskTimeoutError" in json.dumps(body)
