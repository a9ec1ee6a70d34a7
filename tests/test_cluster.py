"""The devbox's real Kubernetes cluster: its control plane, its kwok CPU and GPU nodes, Pod Security,
and what flyte-infra renders, admitted by a real API server.

`cluster` (tests/services.py) brings up etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok on loopback, building them into the cache on first use.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flyte_infra.artifacts.manifests import GPU_TOLERATION
from flyte_infra.artifacts.render import render
from flyte_infra.deploy.settings import StackSettings
from flyte_infra.devbox.cluster import CPU_NODES, NODES, Cluster
from flyte_infra.kube.cluster import diagnose
from flyte_infra.loader import load_program
from flyte_infra.model.resources import GPU
from flyte_infra.packaging.lock import lock_path, read_lock

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

pytestmark = pytest.mark.cluster


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None, check: bool = True) -> str:
    command = [cluster.environment()["FLYTE_INFRA_KUBECTL"], "--kubeconfig", str(cluster.kubeconfig), *args]
    completed = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)
    if check and completed.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout + completed.stderr


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace enforcing the `restricted` Pod Security Standard, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl(cluster, "create", "namespace", name)
    kubectl(cluster, "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kubectl(cluster, "delete", "namespace", name, "--wait=false", check=False)


def wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.5)


def restricted_pod(name: str, **spec: Any) -> dict[str, Any]:
    """A pod that meets Pod Security `restricted`, with `spec` merged in."""
    container = {
        "name": "main",
        "image": "127.0.0.1:5000/flyte-infra/python:3.11-bookworm",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container | spec.pop("container", {})], **spec},
    }


def node_of(cluster: Cluster, namespace: str, pod: str) -> str:
    """The node a pod was scheduled to once it is Running."""

    def running() -> str | None:
        status = json.loads(kubectl(cluster, "-n", namespace, "get", "pod", pod, "-o", "json"))
        return status["spec"].get("nodeName") if status["status"].get("phase") == "Running" else None

    return str(wait_for(running))


def test_the_api_server_answers_ready(cluster: Cluster) -> None:
    assert kubectl(cluster, "get", "--raw", "/readyz").strip() == "ok"


def test_kwok_nodes_look_like_cpu_and_gpu_nodes_of_real_clusters(cluster: Cluster) -> None:
    nodes = {
        n["metadata"]["name"]: n for n in json.loads(kubectl(cluster, "get", "nodes", "-o", "json"))["items"]
    }
    assert set(CPU_NODES) | {gpu.name for gpu in NODES} <= set(nodes)
    for gpu in NODES:
        node = nodes[gpu.name]
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == gpu.product
        assert node["metadata"]["labels"]["cloud.google.com/gke-accelerator"] == gpu.gke
        assert node["metadata"]["labels"]["k8s.amazonaws.com/accelerator"] == gpu.eks
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(gpu.count)
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node["spec"]["taints"]
    for name in CPU_NODES:
        assert "nvidia.com/gpu" not in nodes[name]["status"]["allocatable"]
    assert all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        for node in nodes.values()
    )


def test_a_pod_becomes_running_on_a_cpu_node_never_on_a_gpu_node(cluster: Cluster, namespace: str) -> None:
    kubectl(cluster, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(restricted_pod("plain")))
    assert node_of(cluster, namespace, "plain") in CPU_NODES


def test_pod_security_restricted_is_enforced(cluster: Cluster, namespace: str) -> None:
    as_root = restricted_pod("rooted", container={"securityContext": {"runAsUser": 0}})
    refused = kubectl(
        cluster,
        "-n",
        namespace,
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=json.dumps(as_root),
        check=False,
    )
    assert 'violates PodSecurity "restricted:latest"' in refused


@pytest.mark.parametrize(
    ("preset", "model", "products"),
    [
        ("nvidia-gfd", "A100", {"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"}),
        ("nvidia-gfd", "A100-80GB", {"NVIDIA-A100-SXM4-80GB"}),
        ("nvidia-gfd", "H100", {"NVIDIA-H100-80GB-HBM3"}),
        ("nvidia-gfd", "L4", {"NVIDIA-L4"}),
        ("nvidia-gfd", "T4", {"Tesla-T4"}),
        ("gke", "A100", {"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"}),
        ("gke", "A100-80GB", {"NVIDIA-A100-SXM4-80GB"}),
        ("gke", "H100", {"NVIDIA-H100-80GB-HBM3"}),
        ("eks", "A100", {"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB", "NVIDIA-A100-SXM4-80GB"}),
        ("eks", "H100", {"NVIDIA-H100-80GB-HBM3"}),
    ],
)
def test_each_preset_schedules_a_gpu_pod_on_a_node_of_the_requested_model(
    cluster: Cluster, namespace: str, preset: str, model: str, products: set[str]
) -> None:
    settings = StackSettings.from_config({"module": "x", "acceleratorLabels": preset}, stack="dev")
    gpu = GPU.parse(f"{model}:1")
    pod = restricted_pod(
        "gpu",
        container={"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        affinity={"nodeAffinity": settings.accelerator_labels.node_affinity(gpu, "gpu")},
        tolerations=[dict(GPU_TOLERATION)],
    )
    kubectl(cluster, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(pod))
    node = node_of(cluster, namespace, "gpu")
    product = {gpu.name: gpu.product for gpu in NODES}[node]
    assert product in products


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_everything_render_writes_is_admitted_by_the_api_server(
    cluster: Cluster, example: Path, tmp_path: Path
) -> None:
    program = load_program(str(example))
    namespace = f"r-{uuid.uuid4().hex[:8]}"
    settings = StackSettings.from_config({"module": str(example), "namespace": namespace}, stack="dev")
    render(program, settings, tmp_path, lock=read_lock(lock_path(example)))  # the examples' committed locks
    kubectl(cluster, "apply", "-f", str(tmp_path / "namespace.yaml"))  # dry-run needs it for real
    try:
        for manifests in sorted(tmp_path.glob("*/manifests.yaml")):
            output = kubectl(cluster, "apply", "--dry-run=server", "-f", str(manifests))
            assert output.count("(server dry run)") == len(
                [doc for doc in yaml.safe_load_all(manifests.read_text()) if doc]
            )
    finally:
        kubectl(cluster, "delete", "namespace", namespace, "--wait=false", check=False)


def test_a_refused_deployment_is_explained_with_the_admission_reason(
    cluster: Cluster, namespace: str
) -> None:
    pod = restricted_pod("x", container={"securityContext": {"runAsUser": 0}})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "rooted", "labels": {"flyte-infra/environment": "rooted"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"flyte-infra/environment": "rooted"}},
            "template": {"metadata": {"labels": {"flyte-infra/environment": "rooted"}}, "spec": pod["spec"]},
        },
    }
    kubectl(cluster, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(deployment))

    def refused() -> str | None:
        reason = diagnose(str(cluster.kubeconfig), namespace).get("rooted", "")
        return reason if reason.startswith("pods refused") else None

    assert 'violates PodSecurity "restricted:latest"' in wait_for(refused)
