"""`flyte-infra up` to the devbox's real cluster: every Deployment Available, GPU pods on nodes of
the right model, failures that say why within readyTimeout, and destroy leaving nothing behind."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flyte_infra.devbox.cluster import CPU_NODES, NODES, Cluster
from flyte_infra.devbox.docker import DockerServices
from flyte_infra.devbox.toolchain import Toolchain
from flyte_infra.errors import EngineError
from flyte_infra.kube.cluster import environment_status
from flyte_infra.pulumi.automation import destroy, refresh, up

from .projects import copy_project, set_config

pytestmark = [pytest.mark.cluster, pytest.mark.engine, pytest.mark.docker]

A100_NODES = {gpu.name for gpu in NODES if gpu.product in {"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"}}


@pytest.fixture
def project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi_toolchain: Toolchain,
    docker_services: DockerServices,
    cluster: Cluster,
) -> Iterator[Path]:
    """A copy of the project whose dev stack deploys to the devbox cluster, in a namespace of its own,
    deleted afterwards whatever the test did (the cluster outlives the test session)."""
    copy_project(tmp_path, monkeypatch)
    namespace = f"e-{uuid.uuid4().hex[:8]}"
    set_config(tmp_path, "dev", kubeconfig=str(cluster.kubeconfig), namespace=namespace)
    yield tmp_path
    kubectl = [cluster.environment()["FLYTE_INFRA_KUBECTL"], "--kubeconfig", str(cluster.kubeconfig)]
    subprocess.run([*kubectl, "delete", "namespace", namespace, "--ignore-not-found"], capture_output=True)


def namespace_of(project: Path) -> str:
    text = (project / "stacks" / "Pulumi.dev.yaml").read_text()
    return next(
        line.split(":", 2)[-1].strip() for line in text.splitlines() if "flyte-infra:namespace" in line
    )


def test_up_makes_every_deployment_available_with_gpu_pods_on_their_model_then_destroy_removes_all(
    project: Path, cluster: Cluster
) -> None:
    deployed = up("dev", project, io.StringIO())
    rows = {
        row.environment: row for row in environment_status(str(cluster.kubeconfig), namespace_of(project))
    }
    assert set(rows) == {"data-prep", "train", "pipeline"}
    assert all(row.available for row in rows.values())
    assert set(rows["train"].nodes) <= A100_NODES  # A100:2 on an SXM4 or a PCIe A100
    assert set(rows["data-prep"].nodes) | set(rows["pipeline"].nodes) <= set(CPU_NODES)
    assert {name: row.image for name, row in rows.items()} == deployed.outputs["imageRefs"]

    table = subprocess.run(
        [sys.executable, "-m", "flyte_infra.cli", "status", "--stack", "dev", "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr
    train_row = next(line.split() for line in table.stdout.splitlines() if line.startswith("train "))
    assert train_row[1] == "1/1" and train_row[3] in A100_NODES
    assert train_row[2] == deployed.outputs["imageRefs"]["train"].rsplit("@", 1)[-1][:19]

    refreshed = refresh("dev", project, io.StringIO())  # read back from the cluster: nothing drifted
    assert set(refreshed.summary) == {"same"}
    destroy("dev", project, io.StringIO())
    namespaces = json.loads(
        subprocess.run(
            [cluster.environment()["FLYTE_INFRA_KUBECTL"], "--kubeconfig", str(cluster.kubeconfig), "get",
             "namespaces", "-o", "json"],
            capture_output=True, text=True, check=True,
        ).stdout
    )["items"]  # fmt: skip
    remaining = [n for n in namespaces if n["metadata"]["name"] == namespace_of(project)]
    assert remaining == [] or remaining[0]["status"]["phase"] == "Terminating"


def test_a_gpu_model_no_node_has_fails_up_in_ready_timeout_naming_environment_and_selector(
    project: Path,
) -> None:
    (project / "examples" / "b200.py").write_text(
        "import flyte_infra as flyte\n"
        "big = flyte.TaskEnvironment(name='big', resources=flyte.Resources(gpu='B200:1'))\n"
    )
    set_config(project, "dev", module="examples/b200.py", readyTimeout=20)
    with pytest.raises(EngineError) as failure:
        up("dev", project, io.StringIO())
    message = str(failure.value)
    assert "environment 'big': unschedulable:" in message
    assert "nvidia.com/gpu.product in [NVIDIA-B200]" in message


def test_pods_refused_by_admission_fail_up_with_the_refusal(project: Path, cluster: Cluster) -> None:
    # an admission policy of the cluster's refuses every pod of this stack's namespace
    namespace = namespace_of(project)
    name = f"refuse-{namespace}"
    policy = [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"namespaceObject.metadata.name != '{namespace}'",
                        "message": "no pods here (test policy)",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]
    kubectl = [cluster.environment()["FLYTE_INFRA_KUBECTL"], "--kubeconfig", str(cluster.kubeconfig)]
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": policy})
    subprocess.run([*kubectl, "apply", "-f", "-"], input=document, text=True, check=True, capture_output=True)
    try:
        set_config(project, "dev", readyTimeout=20)
        with pytest.raises(
            EngineError,
            match=r"environment '[a-z-]+': pods refused \(FailedCreate\): .*no pods here \(test policy\)",
        ):
            up("dev", project, io.StringIO())
    finally:
        subprocess.run([*kubectl, "delete", "-f", "-"], input=document, text=True, capture_output=True)
