"""Issue 17, items 1 and 2: `import flyte` resolves to flyte-infra's API; Flyte names accepted."""

from __future__ import annotations

import re

import pytest

import flyte
import flyte_infra
from flyte_infra.artifacts.dockerfile import image_spec
from flyte_infra.artifacts.manifests import environment_manifests, service_dns
from flyte_infra.deploy.graph import build_graph
from flyte_infra.errors import InvalidSpecError, NameCollisionError
from flyte_infra.runtime.client import endpoint_of

from ..locks import fake_lock
from ..stacks import stack
from .helpers import MODULES, ROOT, cli, load_source


def test_import_flyte_gives_flyte_infras_environment_and_task_types():
    assert flyte.TaskEnvironment is flyte_infra.TaskEnvironment
    assert flyte.Resources is flyte_infra.Resources
    assert flyte.Task is flyte_infra.Task


def test_an_unmodified_flyte2_module_passes_check_and_plan_through_the_cli():
    checked = cli("check", str(MODULES / "pipeline_flyte2.py"))
    assert checked.returncode == 0, checked.stderr
    # one DAG, one Python: one resolution (uv, over the network: there is no stored lock)
    summary = r"ok: 2 environment\(s\), [1-9]\d* package\(s\) locked in 1 resolution\(s\), no errors\n"
    assert re.fullmatch(summary, checked.stdout), checked.stdout
    assert not (MODULES / "pipeline_flyte2.lock.toml").exists()  # check writes no lock
    planned = cli("plan", str(MODULES / "pipeline_flyte2.py"))
    assert planned.returncode == 0, planned.stderr
    assert "deploy order: data_prep -> trainer_gpu" in planned.stdout


def test_a_flyte_api_we_lack_fails_with_one_line_naming_it(tmp_path):
    module = tmp_path / "uses_missing.py"
    module.write_text("import flyte\nenv = flyte.TaskEnvironment('x')\nflyte.Notification('y')\n")
    completed = cli("check", str(module))
    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1
    assert "flyte.Notification is not supported by flyte-infra" in completed.stderr


def test_when_another_flyte_package_comes_first_the_loader_uses_ours_and_says_so(tmp_path):
    fake = tmp_path / "site" / "flyte"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('the real Flyte SDK was imported')\n")
    module = tmp_path / "app_real_sdk.py"
    module.write_text("import flyte\nenv = flyte.TaskEnvironment('with_sdk')\n")
    completed = cli("check", str(module), cwd=tmp_path, pythonpath=f"{tmp_path / 'site'}:{ROOT}")
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.startswith(
        "note: `import flyte` gives flyte-infra's Flyte 2 API, not the Flyte SDK at"
    )


def test_the_worker_image_carries_the_flyte_package_on_its_python_path():
    program = flyte_infra.loader.load_program(str(MODULES / "pipeline_flyte2.py"))
    spec = image_spec(program.environment("data_prep"), program, stack(), fake_lock(program.environments))
    assert "runtime/flyte/__init__.py" in spec.files
    assert "runtime/flyte/_local.py" in spec.files
    [layer] = spec.layers
    paths = "/opt/flyte-infra/runtime:/opt/flyte-infra/code:/opt/flyte-infra/site/" + layer.key
    assert f"ENV PYTHONPATH={paths} " in spec.dockerfile  # flyte first, then the code and packages


def test_snake_case_names_are_accepted_and_kubernetes_names_derived(tmp_path):
    program = load_source(
        tmp_path,
        """
        import flyte
        env = flyte.TaskEnvironment(name="my_env_2")
        """,
    )
    environment = program.environment("my_env_2")
    assert environment.kubernetes_name == "my-env-2"
    objects = environment_manifests(environment, build_graph([environment]), stack(), "img")
    assert {obj["metadata"]["name"] for obj in objects} == {"my-env-2"}
    deployment = objects[1]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["--env", "my_env_2"]
    assert service_dns("my_env_2", stack()).startswith("my-env-2.")
    template = {"FLYTE_INFRA_ENDPOINT_TEMPLATE": "http://{env}.ns.svc:8080"}
    assert endpoint_of("my_env_2", template) == "http://my-env-2.ns.svc:8080"


def test_names_that_start_with_a_digit_or_are_long_derive_valid_service_names():
    assert flyte.TaskEnvironment("3d_render").kubernetes_name == "env-3d-render"
    long_name = flyte.TaskEnvironment("a" * 100).kubernetes_name
    assert len(long_name) <= 63
    assert long_name.startswith("a" * 54 + "-")


@pytest.mark.parametrize("name", ["Train", "train__gpu", "train_", "_train", "train.gpu"])
def test_names_flyte_rejects_are_rejected(name):
    with pytest.raises(InvalidSpecError, match="not an environment name"):
        flyte.TaskEnvironment(name)


def test_two_environments_whose_kubernetes_names_collide_are_an_error_naming_both():
    first = flyte.TaskEnvironment("train_gpu")
    second = flyte.TaskEnvironment("train-gpu", depends_on=[first])
    with pytest.raises(
        NameCollisionError,
        match=r"'train-gpu' .* and 'train_gpu' .* both become the Kubernetes name 'train-gpu'",
    ):
        build_graph([second])
