from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from flyte_infra import FlyteInfraError, InvalidSpecError, PreflightError, Resources, TaskEnvironment
from flyte_infra.dockerfile import image_spec
from flyte_infra.graph import build_graph
from flyte_infra.loader import Program, load_program
from flyte_infra.manifests import environment_manifests, namespace_manifest
from flyte_infra.render import render
from flyte_infra.settings import StackSettings, load_stack_settings

ROOT = Path(__file__).parents[1]
EXAMPLE = str(ROOT / "examples" / "ml_pipeline.py")
KUBERNETES = kubernetes_validate.latest_version()


def settings(**values):
    return StackSettings.from_config({"module": EXAMPLE, "namespace": "flyte-dev", **values}, stack="dev")


def manifests_of(name, stack=None):
    program = load_program(EXAMPLE)
    graph = build_graph(program.environments)
    objects = environment_manifests(
        graph.environments[name], graph, stack or settings(), "registry/x@sha256:0"
    )
    return {obj["kind"]: obj for obj in objects}


def pod_of(name, stack=None):
    return manifests_of(name, stack)["Deployment"]["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("preset", "key", "value"),
    [
        ("nvidia-gfd", "nvidia.com/gpu.product", "NVIDIA-A100-SXM4-40GB"),
        ("gke", "cloud.google.com/gke-accelerator", "nvidia-tesla-a100"),
        ("eks", "k8s.amazonaws.com/accelerator", "nvidia-tesla-a100"),
    ],
)
def test_gpu_environments_get_count_selector_and_toleration(preset, key, value):
    pod = pod_of("train", settings(acceleratorLabels=preset))
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {key: value}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_cpu_environments_get_no_gpu_scheduling():
    pod = pod_of("data-prep")
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }


def test_label_overrides_and_missing_label_values():
    custom = settings(acceleratorLabels={"preset": None, "key": "gpu-type", "values": {"A100": "a100"}})
    assert pod_of("train", custom)["nodeSelector"] == {"gpu-type": "a100"}
    env = TaskEnvironment("l40s", resources=Resources(gpu="L40S"))
    graph = build_graph([env])
    with pytest.raises(InvalidSpecError, match=r"'l40s': resources.gpu: L40S has no .* under preset 'gke'"):
        environment_manifests(env, graph, settings(acceleratorLabels="gke"), "x")


def test_pods_are_locked_down():
    objects = manifests_of("pipeline")
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "pipeline"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def test_network_policy_admits_only_dependents():
    def admitted(name):
        rule = manifests_of(name)["NetworkPolicy"]["spec"]["ingress"][0]["from"][0]["podSelector"]
        return rule.get("matchExpressions", [{}])[0].get("values") or rule["matchLabels"]

    assert admitted("train") == ["pipeline"]
    assert admitted("pipeline") == {"flyte-infra/role": "client"}  # the entrypoint: clients only


def test_workers_learn_where_services_are():
    variables = {v["name"]: v.get("value") for v in pod_of("pipeline")["containers"][0]["env"]}
    assert variables["FLYTE_INFRA_ENV"] == "pipeline"
    assert variables["FLYTE_INFRA_ENDPOINT_TEMPLATE"] == "http://{env}.flyte-dev.svc.cluster.local:8080"
    assert pod_of("pipeline")["containers"][0]["args"] == ["--env", "pipeline", "--port", "8080"]


def test_secrets_and_env_vars_reach_the_container():
    env = TaskEnvironment("s", env_vars={"B": "2", "A": "1"}, secrets=["hf_token"])
    objects = environment_manifests(env, build_graph([env]), settings(), "x")
    variables = objects[1]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert variables[:3] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "hf_token"}}},
    ]


def test_every_manifest_validates_against_the_kubernetes_schema():
    objects = [namespace_manifest(settings())]
    for name in ("data-prep", "train", "pipeline"):
        objects += manifests_of(name).values()
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_image_specs_share_a_tag_only_when_identical():
    program = load_program(EXAMPLE)
    stack = settings()
    train, pipeline, data = (
        image_spec(program.environment(n), program, stack) for n in ("train", "pipeline", "data-prep")
    )
    assert train.tag == pipeline.tag != data.tag
    changed = program.environment("train").clone_with(name="train-2", packages=["six>=1.16", "idna==3.9"])
    assert image_spec(changed, program, stack).tag != train.tag
    assert image_spec(program.environment("train"), program, stack) == train  # deterministic


def test_dockerfile_layers():
    program = load_program(EXAMPLE)
    stack = settings(baseImages={"python:3.11-slim-bookworm": "127.0.0.1:5000/base:1"})
    spec = image_spec(program.environment("train"), program, stack)
    lines = spec.dockerfile.splitlines()
    assert lines[1] == "FROM 127.0.0.1:5000/base:1"
    assert "'pydantic>=2.6,<3'" in lines[2]
    assert lines[3].endswith("'six>=1.16' idna==3.10")
    assert 'ENTRYPOINT ["python", "-m", "flyte_infra.worker"]' in lines and "USER 1000:1000" in lines
    assert "code/ml_pipeline.py" in spec.files and "runtime/flyte_infra/worker.py" in spec.files
    assert not any(path.startswith("runtime/flyte_infra/pulumi") for path in spec.files)
    assert spec.image_name(stack) == f"127.0.0.1:5000/flyte-infra/environments:{spec.tag}"


def test_render_writes_what_would_be_deployed(tmp_path):
    written = render(load_program(EXAMPLE), load_stack_settings(ROOT, "dev"), tmp_path)
    assert (tmp_path / "namespace.yaml") in written
    documents = list(yaml.safe_load_all((tmp_path / "train" / "manifests.yaml").read_text()))
    assert [doc["kind"] for doc in documents] == ["ServiceAccount", "Deployment", "Service", "NetworkPolicy"]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    image = documents[1]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert (tmp_path / "images" / image.rsplit(":", 1)[-1] / "Dockerfile").is_file()


def test_render_uses_known_digests_and_writes_nothing_on_a_preflight_error(tmp_path):
    program = load_program(EXAMPLE)
    digests = {}
    for name in ("data-prep", "train", "pipeline"):
        tag = image_spec(program.environment(name), program, settings()).tag
        digests[name] = f"127.0.0.1:5000/flyte-infra/environments:{tag}@sha256:" + "a" * 64
    render(program, settings(), tmp_path / "ok", digests)
    assert f"image: {digests['train']}" in (tmp_path / "ok" / "train" / "manifests.yaml").read_text()
    stale = {**digests, "train": "127.0.0.1:5000/flyte-infra/environments:sha-old@sha256:" + "b" * 64}
    with pytest.raises(
        FlyteInfraError, match="'train': its image spec changed since stack 'the given images'"
    ):
        render(program, settings(), tmp_path / "stale", stale)
    assert not (tmp_path / "stale").exists()
    child = TaskEnvironment("child", packages=["torch"])
    parent = TaskEnvironment("parent", depends_on=[child])
    with pytest.raises(PreflightError):
        render(Program("bad", tmp_path, (), (child, parent)), settings(), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_stack_settings_errors_and_files():
    with pytest.raises(InvalidSpecError, match="stack 'dev': flyte-infra:replica: unknown setting"):
        StackSettings.from_config({"module": "m", "replica": 2}, stack="dev")
    with pytest.raises(InvalidSpecError, match="stack 'dev': namespace: 'Flyte' is not a DNS-1123 label"):
        settings(namespace="Flyte")
    staging, prod = load_stack_settings(ROOT, "staging"), load_stack_settings(ROOT, "prod")
    assert (staging.promote_from, prod.promote_from) == ("dev", "staging")
    assert prod.accelerator_labels.preset == "gke" and prod.replicas == 3
