from typing import Any

import kubernetes_validate
import pytest

from flyte_infra import InvalidSpecError, Resources, Secret, TaskEnvironment
from flyte_infra.artifacts.manifests import (
    environment_manifests,
    namespace_manifest,
    service_dns,
    token_secret_manifest,
)
from flyte_infra.deploy.graph import build_graph
from flyte_infra.runtime.endpoints import ENDPOINT_TEMPLATE_VARIABLE

from .stacks import example, stack, validate

IMAGE = "127.0.0.1:5000/flyte-infra/environments:sha-1@sha256:" + "0" * 64


def manifests_of(name, settings=None):
    _, graph = example()
    objects = environment_manifests(graph.environments[name], graph, settings or stack(), IMAGE)
    return {obj["kind"]: obj for obj in objects}


def pod_of(name, settings=None):
    return manifests_of(name, settings)["Deployment"]["spec"]["template"]["spec"]


def manifests_for(environment, settings=None):
    return environment_manifests(environment, build_graph([environment]), settings or stack(), IMAGE)


def env_of(pod):
    return pod["containers"][0]["env"]


def test_objects_labels_and_names():
    _, graph = example()
    objects = environment_manifests(graph.environments["train"], graph, stack(), IMAGE)
    assert [obj["kind"] for obj in objects] == ["ServiceAccount", "Deployment", "Service", "NetworkPolicy"]
    for obj in objects:
        assert obj["metadata"] == {
            "name": "train",
            "namespace": "flyte-dev",
            "labels": {
                "app.kubernetes.io/name": "train",
                "app.kubernetes.io/part-of": "flyte-infra",
                "app.kubernetes.io/managed-by": "flyte-infra",
                "flyte-infra/environment": "train",
            },
        }
    deployment, service = objects[1]["spec"], objects[2]["spec"]
    assert deployment["selector"] == {"matchLabels": {"flyte-infra/environment": "train"}}
    assert deployment["template"]["metadata"]["labels"] == objects[1]["metadata"]["labels"]
    assert service["type"] == "ClusterIP" and service["selector"] == {"flyte-infra/environment": "train"}
    assert service["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert service_dns("train", stack()) == "train.flyte-dev.svc.cluster.local"


@pytest.mark.parametrize(
    ("preset", "key", "value"),
    [
        ("nvidia-gfd", "nvidia.com/gpu.product", ["NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"]),
        ("gke", "cloud.google.com/gke-accelerator", ["nvidia-tesla-a100"]),
        ("eks", "k8s.amazonaws.com/accelerator", ["nvidia-tesla-a100"]),
    ],
)
def test_gpu_environments_get_count_selector_and_toleration(preset, key, value):
    pod = pod_of("train", stack(acceleratorLabels=preset))
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "2"}
    assert resources["limits"] == {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "2"}
    assert selected_nodes(pod) == {key: value}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def selected_nodes(pod: dict[str, Any]) -> dict[str, list[str]]:
    """The node labels (key -> accepted values) a pod's required node affinity selects on."""
    required = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (term,) = required["nodeSelectorTerms"]
    return {e["key"]: e["values"] for e in term["matchExpressions"] if e["operator"] == "In"}


def test_mig_slices_request_the_resource_the_clusters_device_plugin_advertises():
    env = TaskEnvironment("slice", resources=Resources(gpu="A100-1g.5gb:3", disk="10Gi"))
    resources = manifests_for(env)[1]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert (  # NVIDIA's device plugin, mixed strategy: one resource per MIG profile
        resources["requests"]
        == resources["limits"]
        == {"ephemeral-storage": "10Gi", "nvidia.com/mig-1g.5gb": "3"}
    )
    on_gke = manifests_for(env, stack(acceleratorLabels="gke"))[1]["spec"]["template"]["spec"]
    assert on_gke["containers"][0]["resources"]["limits"] == {
        "ephemeral-storage": "10Gi",
        "nvidia.com/gpu": "3",
    }
    assert selected_nodes(on_gke)["cloud.google.com/gke-gpu-partition-size"] == ["1g.5gb"]


def test_cpu_environments_get_no_gpu_scheduling():
    pod = pod_of("data-prep")
    assert "affinity" not in pod and "nodeSelector" not in pod and "tolerations" not in pod
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert (
        "resources"
        not in manifests_for(TaskEnvironment("tiny"))[1]["spec"]["template"]["spec"]["containers"][0]
    )


def test_a_gpu_model_without_a_label_value_is_an_error_naming_the_environment():
    env = TaskEnvironment("l40s", resources=Resources(gpu="L40S"))
    with pytest.raises(
        InvalidSpecError, match=r"^TaskEnvironment 'l40s': resources.gpu: L40S has no .* preset 'gke'"
    ):
        manifests_for(env, stack(acceleratorLabels="gke"))
    custom = stack(acceleratorLabels={"preset": "gke", "values": {"L40S": "l40s"}})
    assert selected_nodes(manifests_for(env, custom)[1]["spec"]["template"]["spec"]) == {
        "cloud.google.com/gke-accelerator": ["l40s"]
    }


def test_pods_are_locked_down():
    objects = manifests_of("pipeline")
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "pipeline"
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert (
        namespace_manifest(stack())["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "restricted"
    )


def test_the_worker_container():
    container = pod_of("pipeline", stack(port=9000))["containers"][0]
    assert container["name"] == "worker" and container["image"] == IMAGE
    assert container["args"] == ["--env", "pipeline", "--port", "9000"]
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_replicas_per_environment():
    settings = stack(replicas=3, replicasPerEnvironment={"train": 1})
    assert manifests_of("train", settings)["Deployment"]["spec"]["replicas"] == 1
    assert manifests_of("pipeline", settings)["Deployment"]["spec"]["replicas"] == 3


def admitted(policy):
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    (source,) = rule["from"]
    return source


def test_network_policy_admits_exactly_the_dependents_closure():
    base = TaskEnvironment("base")
    middle = TaskEnvironment("middle", depends_on=[base])
    top = TaskEnvironment("top", depends_on=[middle])
    side = TaskEnvironment("side", depends_on=[base])
    graph = build_graph([top, side])

    def policy(env):
        objects = environment_manifests(env, graph, stack(), IMAGE)
        assert objects[3]["spec"]["podSelector"] == {"matchLabels": {"flyte-infra/environment": env.name}}
        assert objects[3]["spec"]["policyTypes"] == ["Ingress"]
        return admitted(objects[3])

    def admitting(*names):  # pods of these environments, in the policy's own namespace
        expression = {"key": "flyte-infra/environment", "operator": "In", "values": list(names)}
        return {"podSelector": {"matchExpressions": [expression]}}

    assert policy(base) == admitting("middle", "side", "top")  # `top` calls into `base` through `middle`
    assert policy(middle) == admitting("top")
    clients = {"podSelector": {"matchLabels": {"flyte-infra/role": "client"}}}
    assert policy(top) == policy(side) == clients  # entrypoints: client pods of the stack's namespace


def test_an_entry_environment_admits_client_pods_only_of_the_namespaces_the_stack_names():
    entry = TaskEnvironment("entry")
    policy = environment_manifests(entry, build_graph([entry]), stack(clientNamespaces=["ci"]), IMAGE)[3]
    client = {"matchLabels": {"flyte-infra/role": "client"}}
    assert policy["spec"]["ingress"][0]["from"] == [
        {"podSelector": client},  # no namespaceSelector: the policy's own namespace only
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ci"}}, "podSelector": client},
    ]
    assert all(source.get("namespaceSelector") != {} for source in policy["spec"]["ingress"][0]["from"])


def test_every_worker_reads_the_namespace_token_and_drains_after_a_prestop_delay():
    pod = pod_of("pipeline", stack())
    variables = {v["name"]: v for v in env_of(pod)}
    assert variables["FLYTE_INFRA_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "flyte-infra-token", "key": "token"}
    }
    assert "optional" not in variables["FLYTE_INFRA_TOKEN"]["valueFrom"]["secretKeyRef"]  # fail closed
    container = pod["containers"][0]
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == ["python", "-c", "import time; time.sleep(5)"]
    assert int(variables["FLYTE_INFRA_DRAIN"]["value"]) + 5 < pod["terminationGracePeriodSeconds"]


def test_the_token_secret_for_the_pulumi_program_is_a_plain_manifest():
    secret = token_secret_manifest(stack(), "t0ken")
    assert (secret["kind"], secret["metadata"]["name"], secret["stringData"]) == (
        "Secret",
        "flyte-infra-token",
        {"token": "t0ken"},
    )
    kubernetes_validate.validate(secret, "1.30", strict=True)


def test_workers_learn_who_they_are_and_where_services_are():
    variables = {
        v["name"]: v.get("value") for v in env_of(pod_of("pipeline", stack(clusterDomain="k8s.example")))
    }
    assert variables["FLYTE_INFRA_ENV"] == "pipeline"
    assert variables[ENDPOINT_TEMPLATE_VARIABLE] == "http://{env}.flyte-dev.svc.k8s.example:8080"
    template = variables[ENDPOINT_TEMPLATE_VARIABLE]
    assert (
        template.format(env="train")
        == f"http://{service_dns('train', stack(clusterDomain='k8s.example'))}:8080"
    )


def test_env_vars_and_secrets_reach_the_container_in_a_stable_order():
    env = TaskEnvironment(
        "s",
        env_vars={"B": "2", "A": "1"},
        secrets=["hf_token", Secret(key="password", group="db", as_env_var="DB_PASSWORD")],
    )
    assert env_of(manifests_for(env)[1]["spec"]["template"]["spec"])[:4] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "hf_token"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ]


@pytest.mark.parametrize(
    ("env_vars", "secrets", "problem"),
    [
        ({"HF_TOKEN": "x"}, ["hf_token"], "secrets\\[0\\]: variable 'HF_TOKEN' is already set"),
        ({"FLYTE_INFRA_ENV": "other"}, [], "env_vars: 'FLYTE_INFRA_ENV' is reserved"),
    ],
)
def test_a_variable_defined_twice_is_an_error_when_the_environment_is_made(env_vars, secrets, problem):
    with pytest.raises(InvalidSpecError, match=rf"^TaskEnvironment 'twice': .*{problem}"):
        TaskEnvironment("twice", env_vars=env_vars, secrets=secrets)


def test_every_manifest_validates_against_the_kubernetes_schema():
    settings = stack(acceleratorLabels="gke", replicasPerEnvironment={"train": 0})
    objects = [namespace_manifest(settings)]
    for name in ("data-prep", "train", "pipeline"):
        objects += manifests_of(name, settings).values()
    secretive = TaskEnvironment(
        "secretive", env_vars={"A": "1"}, secrets=["token"], resources=Resources(disk="1Gi")
    )
    objects += manifests_for(secretive)
    for obj in objects:
        validate(obj)


def test_the_schema_check_can_fail():
    deployment = manifests_of("train")["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["dropCapabilities"] = ["ALL"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
