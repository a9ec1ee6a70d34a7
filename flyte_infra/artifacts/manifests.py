"""Kubernetes objects of an environment, as plain dicts: what `render` writes and Pulumi deploys."""

from __future__ import annotations

from typing import Any

from ..deploy.graph import EnvironmentGraph
from ..deploy.settings import StackSettings
from ..errors import InvalidSpecError
from ..model.environment import TaskEnvironment
from ..model.validation import kubernetes_name
from ..runtime.endpoints import ENDPOINT_TEMPLATE_VARIABLE, TOKEN_VARIABLE

__all__ = [
    "CLIENT_LABEL",
    "ENVIRONMENT_LABEL",
    "ENVIRONMENT_VARIABLE",
    "TOKEN_SECRET",
    "environment_manifests",
    "namespace_manifest",
    "service_dns",
    "token_secret_manifest",
]

ENVIRONMENT_LABEL = "flyte-infra/environment"
"""Every object and pod of an environment carries it; selectors and NetworkPolicies match on it."""
CLIENT_LABEL = "flyte-infra/role"
"""Pods labelled `flyte-infra/role: client` may call entrypoint environments (nothing depends on them)."""
ENVIRONMENT_VARIABLE = "FLYTE_INFRA_ENV"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every Namespace to its name; it cannot be set to anything else."""
TOKEN_SECRET = "flyte-infra-token"
"""The namespace's Secret whose `token` key every worker reads as FLYTE_INFRA_TOKEN: callers send it as
a bearer token and workers refuse calls without it. Not optional: a pod waits for the Secret rather
than serve unauthenticated. `render` never writes it (a token does not belong in Git): create it
once per namespace; the Pulumi program creates it with `token_secret_manifest`."""
TERMINATION_GRACE_SECONDS = 30
"""The pod's terminationGracePeriodSeconds: preStop delay, then the drain, then SIGKILL."""
PRE_STOP_SECONDS = 5
"""Seconds the pod keeps serving after it is marked terminating, so Services and kube-proxy stop
routing to it before the worker stops accepting."""
DRAIN_SECONDS = TERMINATION_GRACE_SECONDS - PRE_STOP_SECONDS - 3
"""FLYTE_INFRA_DRAIN: what is left for in-flight tasks after SIGTERM, with 3 s to exit."""
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

Manifest = dict[str, Any]


def service_dns(environment: str, settings: StackSettings) -> str:
    """`<service>.<namespace>.svc.<cluster domain>`: the address of an environment's Service, whose
    name is derived from the environment's (`kubernetes_name`). `{env}` stays a template slot."""
    service = environment if environment == "{env}" else kubernetes_name(environment)
    return f"{service}.{settings.namespace}.svc.{settings.cluster_domain}"


def _labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "flyte-infra",
        "app.kubernetes.io/managed-by": "flyte-infra",
        ENVIRONMENT_LABEL: name,
    }


def _metadata(name: str, settings: StackSettings) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": _labels(name)}


def namespace_manifest(settings: StackSettings) -> Manifest:
    """The stack's Namespace; it enforces the `restricted` Pod Security Standard, which workers meet."""
    labels = {
        "app.kubernetes.io/part-of": "flyte-infra",
        "pod-security.kubernetes.io/enforce": "restricted",
    }
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": settings.namespace, "labels": labels},
    }


def token_secret_manifest(settings: StackSettings, token: str) -> Manifest:
    """The namespace's worker token Secret (`TOKEN_SECRET`), for the Pulumi program: `token` comes from
    the stack's secret config (`flyte-infra:workerToken`, `pulumi config set --secret`), never from a
    file `render` writes."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TOKEN_SECRET, "namespace": settings.namespace, "labels": _labels(TOKEN_SECRET)},
        "type": "Opaque",
        "stringData": {"token": token},
    }


def environment_manifests(
    environment: TaskEnvironment, graph: EnvironmentGraph, settings: StackSettings, image_ref: str
) -> list[Manifest]:
    """ServiceAccount, Deployment, Service and NetworkPolicy of one environment, in that order.

    `image_ref` is used as given (callers pass a ref by digest once one is known). Raises
    InvalidSpecError when the GPU model has no node label value or a variable is defined twice.
    Callers check the settings against the whole graph once (`StackSettings.check_environments`).
    """
    name = environment.kubernetes_name
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(name, settings),
            "automountServiceAccountToken": False,
        },
        _deployment(environment, settings, image_ref),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(name, settings),
            "spec": {
                "type": "ClusterIP",
                "selector": {ENVIRONMENT_LABEL: name},
                "ports": [{"name": "http", "port": settings.port, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        _network_policy(environment.name, graph, settings),
    ]


def _environment_variables(environment: TaskEnvironment, settings: StackSettings) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = [
        {"name": key, "value": value} for key, value in sorted(environment.env_vars.items())
    ]
    variables += [
        {
            "name": secret.env_var,
            "valueFrom": {"secretKeyRef": {"name": secret.secret_name, "key": secret.key}},
        }
        for secret in environment.secrets
    ]
    if environment.reusable is not None and environment.reusable.concurrency > 0:
        variables.append({"name": "FLYTE_INFRA_MAX_TASKS", "value": str(environment.reusable.concurrency)})
    template = f"http://{service_dns('{env}', settings)}:{settings.port}"
    variables.append({"name": ENVIRONMENT_VARIABLE, "value": environment.name})
    variables.append({"name": ENDPOINT_TEMPLATE_VARIABLE, "value": template})
    variables.append({"name": "FLYTE_INFRA_DRAIN", "value": str(DRAIN_SECONDS)})
    variables.append(
        {"name": TOKEN_VARIABLE, "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token"}}}
    )
    seen: set[str] = set()
    for variable in variables:
        if variable["name"] in seen:
            raise InvalidSpecError(
                f"TaskEnvironment '{environment.name}'",
                "env_vars",
                f"'{variable['name']}' is defined more than once (env_vars, secrets, or one set by "
                f"flyte-infra: {ENVIRONMENT_VARIABLE}, {ENDPOINT_TEMPLATE_VARIABLE})",
            )
        seen.add(variable["name"])
    return variables


def _deployment(environment: TaskEnvironment, settings: StackSettings, image_ref: str) -> Manifest:
    name = environment.kubernetes_name
    gpu = environment.resources.gpu
    labels = settings.accelerator_labels
    requests, limits = environment.resources.requests_and_limits(
        labels.resource_name(gpu) if gpu is not None and gpu.kind == "nvidia" else None
    )
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container: dict[str, Any] = {
        "name": "worker",
        "image": image_ref,
        "args": ["--env", environment.name, "--port", str(settings.port)],
        "ports": [{"name": "http", "containerPort": settings.port, "protocol": "TCP"}],
        "env": _environment_variables(environment, settings),
        "readinessProbe": {**probe, "periodSeconds": 2, "failureThreshold": 1},
        "lifecycle": {
            "preStop": {"exec": {"command": ["python", "-c", f"import time; time.sleep({PRE_STOP_SECONDS})"]}}
        },
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if requests:
        container["resources"] = {"requests": requests, "limits": limits}
    pod: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if environment.resources.shm is not None:
        shm = {"medium": "Memory"}
        if environment.resources.shm != "auto":
            shm["sizeLimit"] = environment.resources.shm
        pod["volumes"].append({"name": "dshm", "emptyDir": shm})
        container["volumeMounts"].append({"name": "dshm", "mountPath": "/dev/shm"})
    if gpu is not None and gpu.kind == "nvidia":
        if gpu.device is not None:  # gpu=<count>: any node with NVIDIA GPUs
            pod["affinity"] = {"nodeAffinity": labels.node_affinity(gpu, name)}
        pod["tolerations"] = [dict(GPU_TOLERATION)]
    elif gpu is not None:  # other vendors: the device plugin's resource selects nodes; TPUs by label too
        if gpu.node_selector:
            pod["nodeSelector"] = gpu.node_selector
        pod["tolerations"] = [{"key": gpu.resource_name, "operator": "Exists", "effect": "NoSchedule"}]
    template_metadata: dict[str, Any] = {"labels": _labels(name)}
    if environment.pod_template is not None:
        template_metadata = _merge_pod_template(environment, pod, container, template_metadata)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, settings),
        "spec": {
            "replicas": _replicas(environment, settings),
            "selector": {"matchLabels": {ENVIRONMENT_LABEL: name}},
            "template": {"metadata": template_metadata, "spec": pod},
        },
    }


def _replicas(environment: TaskEnvironment, settings: StackSettings) -> int:
    """The stack's replicasPerEnvironment entry, else the environment's ReusePolicy (its minimum),
    else the stack's `replicas`."""
    if environment.name in settings.replicas_per_environment or environment.reusable is None:
        return settings.replicas_of(environment.name)
    return environment.reusable.min_replicas


def _merge_pod_template(
    environment: TaskEnvironment, pod: dict[str, Any], container: dict[str, Any], metadata: dict[str, Any]
) -> dict[str, Any]:
    """The pod template's allowed fields (PodTemplate.spec) merged into `pod` and the worker container;
    lists are appended to, maps updated, other values replaced; flyte-infra's labels win."""
    template = environment.pod_template
    assert template is not None
    spec = template.spec
    for key, value in spec.items():
        if key == "containers":
            for source in value:
                for field, items in source.items():
                    if field != "name":
                        container[field] = [*container.get(field, []), *items]
        elif isinstance(value, list):
            pod[key] = [*pod.get(key, []), *value]
        elif isinstance(value, dict) and isinstance(pod.get(key), dict):
            pod[key] = {**pod[key], **value}
        else:
            pod[key] = value
    merged = {**metadata, "labels": {**dict(template.labels or {}), **metadata["labels"]}}
    if template.annotations:
        merged["annotations"] = dict(template.annotations)
    return merged


def _network_policy(name: str, graph: EnvironmentGraph, settings: StackSettings) -> Manifest:
    """Ingress only from environments that depend on this one (directly or not).

    Nothing depends on an entrypoint environment, so it admits pods labelled `flyte-infra/role:
    client` instead: in the stack's own namespace, and in the namespaces the stack names
    (`clientNamespaces`), matched by their immutable `kubernetes.io/metadata.name` label. A pod in
    any other namespace is not admitted, whatever labels it gives itself; and every call must also
    carry the namespace's token (`TOKEN_SECRET`).
    """
    dependents = sorted(map(kubernetes_name, graph.dependent_closure(name)))
    name = kubernetes_name(name)
    client = {"matchLabels": {CLIENT_LABEL: "client"}}
    sources: list[dict[str, Any]] = (
        [
            {
                "podSelector": {
                    "matchExpressions": [{"key": ENVIRONMENT_LABEL, "operator": "In", "values": dependents}]
                }
            }
        ]
        if dependents
        else [{"podSelector": client}]
        + [
            {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}, "podSelector": client}
            for namespace in settings.client_namespaces
        ]
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, settings),
        "spec": {
            "podSelector": {"matchLabels": {ENVIRONMENT_LABEL: name}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": sources, "ports": [{"port": "http", "protocol": "TCP"}]}],
        },
    }
