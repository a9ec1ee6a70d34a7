"""A real Kubernetes control plane on loopback, with fake CPU and GPU nodes from kwok.

etcd 3.6 (built from the Go module proxy), kube-apiserver, kube-controller-manager and kube-scheduler
(k8s.io/kubernetes, built through a wrapper module since its go.mod has replace directives), and
kwok, which makes the nodes it manages look alive and moves their pods to Running without running
containers. Pod Security admission is on. Everything listens on 127.0.0.1 only.

The nodes look like a real cluster's: a CPU pool, and GPU nodes carrying the labels each
accelerator preset selects on (GPU feature discovery's `nvidia.com/gpu.product`, GKE's and EKS's
accelerator labels), allocatable `nvidia.com/gpu` and the `nvidia.com/gpu` NoSchedule taint.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ServiceError
from .gobuild import GoBinary, GoRecipe, build, go_module_dir, wrapper_module
from .layout import Layout
from .pki import ClusterPKI
from .report import step
from .supervisor import Program, Supervisor, wait_until

__all__ = ["NODES", "PACKAGES", "PROGRAMS", "Cluster", "GPUNode"]

KUBERNETES_VERSION = "1.37.2"
KWOK_VERSION = "0.8.0"
ETCD_VERSION = "3.6.16"
PACKAGES: list[str] = []
PROGRAMS = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
"""Supervised programs, in the order `down` stops them."""

_STAGING = (
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "cri-streaming",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
    "streaming",
)
"""k8s.io/kubernetes's staging modules: its go.mod replaces each with a local folder, so a wrapper
module replaces each with the published v0 release of the same version."""

_SERVICE_CIDR = "10.96.0.0/16"
_SERVICE_IP = "10.96.0.1"
_KWOK_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass(frozen=True)
class GPUNode:
    """A fake GPU node: the model's product string and its cloud accelerator label values."""

    name: str
    product: str
    gke: str
    eks: str
    count: int = 8


NODES = (
    # two nodes of each 40 GB A100: the main job's three stages alone hold twelve of these GPUs
    *(
        GPUNode(
            f"gpu-a100-{form}-40gb-{index}",
            f"NVIDIA-A100-{form.upper()}-40GB",
            "nvidia-tesla-a100",
            "nvidia-tesla-a100",
        )
        for form in ("sxm4", "pcie")
        for index in (0, 1)
    ),
    # EKS labels every A100 alike: its accelerator label does not tell the 80 GB card apart
    GPUNode("gpu-a100-sxm4-80gb", "NVIDIA-A100-SXM4-80GB", "nvidia-a100-80gb", "nvidia-tesla-a100"),
    GPUNode("gpu-h100-sxm5-80gb", "NVIDIA-H100-80GB-HBM3", "nvidia-h100-80gb", "nvidia-h100"),
    GPUNode("gpu-l4", "NVIDIA-L4", "nvidia-l4", "nvidia-l4", count=4),
    GPUNode("gpu-t4", "Tesla-T4", "nvidia-tesla-t4", "nvidia-tesla-t4", count=4),
)
CPU_NODES = ("cpu-0", "cpu-1")


@dataclass(frozen=True)
class Cluster:
    """The devbox cluster for one layout.

    Args:
        layout: the devbox's folders (PKI, etcd data and kubeconfigs go to `<state>/cluster`).
        apiserver_port: the apiserver's port on 127.0.0.1 (`FLYTE_INFRA_APISERVER_PORT`, 6443).
    """

    layout: Layout
    apiserver_port: int = int(os.environ.get("FLYTE_INFRA_APISERVER_PORT", "6443"))
    etcd_port: int = int(os.environ.get("FLYTE_INFRA_ETCD_PORT", "2379"))

    @property
    def home(self) -> Path:
        return self.layout.state / "cluster"

    @property
    def kubeconfig(self) -> Path:
        return self.home / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def environment(self) -> dict[str, str]:
        bin_dir = self.layout.cache / "go" / f"kubernetes-v{KUBERNETES_VERSION}" / "bin"
        return {"KUBECONFIG": str(self.kubeconfig), "FLYTE_INFRA_KUBECTL": str(bin_dir / "kubectl")}

    # ------------------------------------------------------------------ up

    def up(self, supervisor: Supervisor) -> None:
        started = time.monotonic()
        kubernetes = build(_kubernetes_recipe(), self.layout.cache)
        kwok = build(_kwok_recipe(), self.layout.cache)
        etcd = build(_etcd_recipe(), self.layout.cache)
        pki = ClusterPKI(self.home / "pki", _SERVICE_IP)
        pki.ensure(
            {
                "admin": ("flyte-infra-admin", "system:masters"),
                "controller-manager": ("system:kube-controller-manager",),
                "scheduler": ("system:kube-scheduler",),
                "kwok": ("kwok-controller", "system:masters"),
            }
        )
        for user in ("admin", "controller-manager", "scheduler", "kwok"):
            self._write_kubeconfig(pki, user)
        restarted = supervisor.ensure_running(self._etcd(etcd))
        wait_until(self._etcd_up, 30, "etcd", supervisor.log_of("etcd"))
        restarted |= supervisor.ensure_running(self._apiserver(kubernetes, pki))
        wait_until(self.ready, 90, "kube-apiserver", supervisor.log_of("kube-apiserver"))
        step("apiserver", f"ready on {self.server}", started)
        clients = (self._controller_manager(kubernetes, pki), self._scheduler(kubernetes), self._kwok(kwok))
        fresh = supervisor.ensure_running(*clients)
        if restarted:  # a new store under them: the clients' caches and leases are stale
            supervisor.restart(*[client.name for client in clients if client.name not in fresh])
        self._apply_nodes()
        wait_until(self._nodes_ready, 60, "kwok nodes", supervisor.log_of("kwok"))
        wait_until(
            self._default_service_account,
            60,
            "kube-controller-manager",
            supervisor.log_of("kube-controller-manager"),
        )
        step(
            "cluster",
            f"up: {len(CPU_NODES)} CPU and {len(NODES)} GPU nodes Ready; KUBECONFIG={self.kubeconfig}",
            started,
        )

    def _etcd(self, binaries: Path) -> Program:
        data = self.home / f"etcd-{ETCD_VERSION}"
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_port + 1}"
        return Program(
            "etcd",
            [
                str(binaries / "etcd"),
                "--name",
                "devbox",
                "--data-dir",
                str(data),
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"devbox={peer}",
                "--listen-metrics-urls",
                "",
            ],
        )

    def _apiserver(self, binaries: Path, pki: ClusterPKI) -> Program:
        p = pki.path
        return Program(
            "kube-apiserver",
            [
                str(binaries / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                # the default reconciler refuses a loopback advertise address
                "--endpoint-reconciler-type=none",
                f"--service-cluster-ip-range={_SERVICE_CIDR}",
                f"--tls-cert-file={p('apiserver.crt')}",
                f"--tls-private-key-file={p('apiserver.key')}",
                f"--client-ca-file={p('ca.crt')}",
                f"--service-account-key-file={p('sa.pub')}",
                f"--service-account-signing-key-file={p('sa.key')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,"
                "PodSecurity,DefaultTolerationSeconds",
                "--allow-privileged=false",
            ],
            stop_wait=15,
        )

    def _controller_manager(self, binaries: Path, pki: ClusterPKI) -> Program:
        kubeconfig = str(self.home / "controller-manager.kubeconfig")
        return Program(
            "kube-controller-manager",
            [
                str(binaries / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=10257",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki.path('sa.key')}",
                f"--root-ca-file={pki.path('ca.crt')}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={pki.path('ca.crt')}",
                f"--cluster-signing-key-file={pki.path('ca.key')}",
                f"--service-cluster-ip-range={_SERVICE_CIDR}",
            ],
        )

    def _scheduler(self, binaries: Path) -> Program:
        kubeconfig = str(self.home / "scheduler.kubeconfig")
        return Program(
            "kube-scheduler",
            [
                str(binaries / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                "--secure-port=10259",
                "--leader-elect=false",
            ],
        )

    def _kwok(self, binaries: Path) -> Program:
        stages = sorted((binaries / "stages").glob("*.yaml"))
        return Program(
            "kwok",
            [
                str(binaries / "kwok"),
                f"--kubeconfig={self.home / 'kwok.kubeconfig'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={_KWOK_ANNOTATION}=fake",
                "--server-address=127.0.0.1:10247",
                # renew each node's Lease: the heartbeat stage updates node status only every 10-20
                # minutes, so without leases the node controller marks nodes and their pods not ready
                "--node-lease-duration-seconds=40",
                "--node-ip=127.0.0.1",
                "--cidr=10.244.0.1/16",
                *[f"--config={stage}" for stage in stages],
            ],
        )

    def _write_kubeconfig(self, pki: ClusterPKI, user: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "devbox",
                    "cluster": {"server": self.server, "certificate-authority": str(pki.path("ca.crt"))},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate": str(pki.path(f"{user}.crt")),
                        "client-key": str(pki.path(f"{user}.key")),
                    },
                }
            ],
            "contexts": [{"name": "devbox", "context": {"cluster": "devbox", "user": user}}],
            "current-context": "devbox",
        }
        path = self.home / f"{user}.kubeconfig"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    # -------------------------------------------------------------- probes

    def _ssl_context(self) -> ssl.SSLContext:
        pki = self.home / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return context

    def api(
        self, path: str, *, method: str = "GET", body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """One request to the apiserver as the admin; the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.server}{path}",
            data=data,
            method=method,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._ssl_context(), timeout=10) as response:
            text = response.read()
        try:
            return json.loads(text)
        except ValueError:
            return text.decode()

    def ready(self) -> bool:
        try:
            return bool(self.api("/readyz") == "ok")
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def _etcd_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _apply_nodes(self) -> None:
        """Create or update the kwok nodes, and delete kwok nodes an earlier recipe made that this
        one no longer has (the cluster's store outlives the devbox's runs)."""
        wanted = set(CPU_NODES) | {node.name for node in NODES}
        for existing in self.api("/api/v1/nodes")["items"]:
            name = existing["metadata"]["name"]
            fake = existing["metadata"].get("annotations", {}).get(_KWOK_ANNOTATION) == "fake"
            if fake and name not in wanted:
                self.api(f"/api/v1/nodes/{name}", method="DELETE")
        for node in [_cpu_node(name) for name in CPU_NODES] + [_gpu_node(node) for node in NODES]:
            name = node["metadata"]["name"]
            self.api(
                f"/api/v1/nodes/{name}?fieldManager=flyte-infra-devbox&force=true",
                method="PATCH",
                body=node,
                content_type="application/apply-patch+yaml",
            )
            # the status (capacity, allocatable) is a subresource: kwok keeps what is set here
            self.api(
                f"/api/v1/nodes/{name}/status?fieldManager=flyte-infra-devbox&force=true",
                method="PATCH",
                body={
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name},
                    "status": node["status"],
                },
                content_type="application/apply-patch+yaml",
            )

    def _nodes_ready(self) -> bool:
        try:
            nodes = self.api("/api/v1/nodes")["items"]
        except (urllib.error.URLError, OSError):
            return False
        ready = {
            node["metadata"]["name"]
            for node in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
        }
        leases = self.api("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")["items"]
        renewed = {lease["metadata"]["name"] for lease in leases}
        expected = set(CPU_NODES) | {node.name for node in NODES}
        return ready >= expected and renewed >= expected

    def _default_service_account(self) -> bool:
        try:
            self.api("/api/v1/namespaces/default/serviceaccounts/default")
        except urllib.error.HTTPError:
            return False
        return True

    def status(self, supervisor: Supervisor) -> bool:
        healthy = True
        for name in reversed(PROGRAMS):
            state = supervisor.state(name)
            healthy &= state == "RUNNING"
            step(name, state or "not supervised")
        up = self.ready()
        step("apiserver", f"{self.server} /readyz: {'ok' if up else 'not ready'}")
        return healthy and up

    def verify(self) -> None:
        if not self.ready():
            raise ServiceError(
                "cluster", "the apiserver is not ready: python -m flyte_infra.devbox up cluster"
            )
        if not self._nodes_ready():
            raise ServiceError("cluster", "not every kwok node is Ready")
        step("verify", f"cluster ready, {len(CPU_NODES) + len(NODES)} nodes Ready")


def _kubernetes_recipe() -> GoRecipe:
    flags = f"-X k8s.io/component-base/version.gitVersion=v{KUBERNETES_VERSION}"
    commands = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
    packages = [f"k8s.io/kubernetes/cmd/{command}" for command in commands]
    return GoRecipe(
        key=f"kubernetes-v{KUBERNETES_VERSION}",
        binaries=tuple(
            GoBinary(command, package, flags) for command, package in zip(commands, packages, strict=True)
        ),
        prepare=wrapper_module(
            "flyte-infra.local/kubernetes",
            requires=[f"k8s.io/kubernetes@v{KUBERNETES_VERSION}"],
            replaces=[
                f"k8s.io/{module}=k8s.io/{module}@v0.{KUBERNETES_VERSION.split('.', 1)[1]}"
                for module in _STAGING
            ],
            imports=packages,
        ),
        cgo=False,
    )


def _etcd_recipe() -> GoRecipe:
    """etcd from the Go module proxy: Debian's 3.4.23 lacks the watch progress requests that
    client-go's streaming lists need, so the controllers' and kwok's watches kept breaking."""
    package = "go.etcd.io/etcd/server/v3"
    return GoRecipe(
        key=f"etcd-v{ETCD_VERSION}",
        binaries=(GoBinary("etcd", package),),
        prepare=wrapper_module(
            "flyte-infra.local/etcd", requires=[f"{package}@v{ETCD_VERSION}"], imports=[package]
        ),
        cgo=False,
    )


def _kwok_recipe() -> GoRecipe:
    package = "sigs.k8s.io/kwok/cmd/kwok"

    def place_stages(work: Path, bin_dir: Path) -> None:
        # the stage files kwok ships: nodes become Ready and keep a lease, pods become Running
        module = go_module_dir("sigs.k8s.io/kwok", f"v{KWOK_VERSION}", work)
        stages = bin_dir / "stages"
        stages.mkdir()
        for stage in ("node/fast", "node/heartbeat-with-lease", "pod/fast"):
            for source in sorted((module / "kustomize" / "stage" / stage).glob("*.yaml")):
                if source.name != "kustomization.yaml":
                    shutil.copyfile(source, stages / f"{stage.replace('/', '-')}-{source.name}")

    return GoRecipe(
        key=f"kwok-v{KWOK_VERSION}",
        binaries=(GoBinary("kwok", package),),
        prepare=wrapper_module(
            "flyte-infra.local/kwok", requires=[f"sigs.k8s.io/kwok@v{KWOK_VERSION}"], imports=[package]
        ),
        extras=place_stages,
        cgo=False,
    )


def _node(
    name: str, labels: dict[str, str], capacity: dict[str, str], taints: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {_KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **labels,
            },
        },
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": f"v{KUBERNETES_VERSION}-kwok",
            },
        },
    }


def _cpu_node(name: str) -> dict[str, Any]:
    return _node(
        name,
        {"flyte-infra/pool": "cpu"},
        {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"},
        [],
    )


def _gpu_node(node: GPUNode) -> dict[str, Any]:
    labels = {
        "flyte-infra/pool": "gpu",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": node.product,
        "nvidia.com/gpu.count": str(node.count),
        "cloud.google.com/gke-accelerator": node.gke,
        "k8s.amazonaws.com/accelerator": node.eks,
    }
    capacity = {
        "cpu": "96",
        "memory": "1Ti",
        "pods": "110",
        "ephemeral-storage": "1Ti",
        "nvidia.com/gpu": str(node.count),
    }
    return _node(
        node.name, labels, capacity, [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    )
