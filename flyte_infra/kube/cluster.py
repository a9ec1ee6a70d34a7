"""What the cluster says about a stack's environments: readiness, nodes, and why one is not Available.

pulumi-kubernetes reports a Deployment that never becomes Available only as "timed out waiting to
be Ready". The reason is in the cluster: a ReplicaSet's `ReplicaFailure` condition (admission
refused the pods, e.g. Pod Security), or a pod's `PodScheduled=False` message (no node matches the
GPU affinity). `diagnose` reads those, so a failed `up` names the environment and the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from ..artifacts.manifests import ENVIRONMENT_LABEL

__all__ = ["EnvironmentStatus", "diagnose", "environment_status"]


@dataclass(frozen=True)
class EnvironmentStatus:
    """One environment as the cluster runs it.

    Args:
        environment: its name.
        ready: ready replicas over desired ones, e.g. `1/1`.
        nodes: the nodes its pods run on.
        image: the image its pods run (by digest).
    """

    environment: str
    ready: str
    nodes: tuple[str, ...]
    image: str

    @property
    def available(self) -> bool:
        have, _, want = self.ready.partition("/")
        return have == want and want != "0"


def _objects(kubeconfig: str, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """The namespace's flyte-infra Deployments, ReplicaSets and Pods, as plain JSON-like dicts."""
    api = config.new_client_from_config(config_file=str(Path(kubeconfig).expanduser()))  # type: ignore[no-untyped-call]
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    found = {
        "deployments": apps.list_namespaced_deployment(namespace, label_selector=ENVIRONMENT_LABEL).items,
        "replica_sets": apps.list_namespaced_replica_set(namespace, label_selector=ENVIRONMENT_LABEL).items,
        "pods": core.list_namespaced_pod(namespace, label_selector=ENVIRONMENT_LABEL).items,
    }
    return {kind: api.sanitize_for_serialization(items) for kind, items in found.items()}


def _environment_of(item: dict[str, Any]) -> str:
    metadata = item.get("metadata", {})
    return str(metadata.get("labels", {}).get(ENVIRONMENT_LABEL) or metadata.get("name", ""))


def _of(items: list[dict[str, Any]], environment: str) -> list[dict[str, Any]]:
    return [item for item in items if _environment_of(item) == environment]


def environment_status(kubeconfig: str, namespace: str) -> list[EnvironmentStatus]:
    """Every flyte-infra environment deployed in `namespace`, by name."""
    objects = _objects(kubeconfig, namespace)
    rows = []
    for deployment in objects["deployments"]:
        name = _environment_of(deployment)
        pods = _of(objects["pods"], name)
        nodes = sorted({pod["spec"]["nodeName"] for pod in pods if pod["spec"].get("nodeName")})
        ready = (
            f"{deployment.get('status', {}).get('readyReplicas', 0)}/{deployment['spec'].get('replicas', 1)}"
        )
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        rows.append(EnvironmentStatus(name, ready, tuple(nodes), image))
    return sorted(rows, key=lambda row: row.environment)


def diagnose(kubeconfig: str, namespace: str) -> dict[str, str]:
    """Why each environment in `namespace` that is not Available is not: environment -> reason."""
    objects = _objects(kubeconfig, namespace)
    reasons: dict[str, str] = {}
    for deployment in objects["deployments"]:
        name = _environment_of(deployment)
        if deployment.get("status", {}).get("availableReplicas", 0) >= deployment["spec"].get("replicas", 1):
            continue
        reason = _refused(_of(objects["replica_sets"], name)) or _unschedulable(
            _of(objects["pods"], name), deployment["spec"]["template"]["spec"]
        )
        reasons[name] = reason or "its pods are not ready yet"
    return reasons


def _refused(replica_sets: list[dict[str, Any]]) -> str | None:
    """The admission refusal a ReplicaSet recorded (Pod Security, quota, ...)."""
    for replica_set in replica_sets:
        for condition in replica_set.get("status", {}).get("conditions", []):
            if condition["type"] == "ReplicaFailure" and condition["status"] == "True":
                return f"pods refused ({condition.get('reason')}): {condition.get('message')}"
    return None


def _unschedulable(pods: list[dict[str, Any]], pod_spec: dict[str, Any]) -> str | None:
    """The scheduler's message for a pod no node accepts, with the node affinity it asked for."""
    for pod in pods:
        for condition in pod.get("status", {}).get("conditions", []):
            if condition["type"] == "PodScheduled" and condition["status"] == "False":
                return f"unschedulable: {condition.get('message')}{_affinity_text(pod_spec)}"
    return None


def _affinity_text(pod_spec: dict[str, Any]) -> str:
    required = (
        pod_spec.get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
    )
    wanted = [
        f"{expression['key']} in [{', '.join(expression.get('values', []))}]"
        for term in required.get("nodeSelectorTerms", [])
        for expression in term.get("matchExpressions", [])
    ]
    return f" (no node has {' and '.join(wanted)})" if wanted else ""
