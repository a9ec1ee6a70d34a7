"""The devbox's building blocks, each for real on this machine: supervisord, Go builds, PKI, apt."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from flyte_infra.devbox.apt import mirrors
from flyte_infra.devbox.cluster import CPU_NODES, NODES, _gpu_node
from flyte_infra.devbox.gobuild import GoBinary, GoRecipe, build
from flyte_infra.devbox.layout import Layout
from flyte_infra.devbox.pki import ClusterPKI
from flyte_infra.devbox.supervisor import Program, Supervisor, wait_until
from flyte_infra.devbox.toolchain import PULUMI_VERSION, _installed
from flyte_infra.errors import ServiceError


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    # a unix socket path must stay under 108 bytes: keep the run dir short
    run = Path(f"/tmp/fi-test-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    return Layout(run=run, state=tmp_path / "state", cache=tmp_path / "cache")


@pytest.fixture
def supervisor(layout: Layout) -> Iterator[Supervisor]:
    supervisor = Supervisor(layout)
    yield supervisor
    supervisor.stop("sleeper")
    supervisor.shutdown_if_idle()


def test_a_supervised_program_runs_restarts_when_its_command_changes_and_stops(
    supervisor: Supervisor,
) -> None:
    supervisor.ensure_running(Program("sleeper", ["sleep", "300"]))
    wait_until(lambda: supervisor.state("sleeper") == "RUNNING", 10, "sleeper")
    first = supervisor.pid("sleeper")
    assert first is not None and os.path.exists(f"/proc/{first}")

    supervisor.ensure_running(Program("sleeper", ["sleep", "300"]))  # unchanged: left alone
    assert supervisor.pid("sleeper") == first

    supervisor.ensure_running(Program("sleeper", ["sleep", "301"], environment={"PERCENT": "100%"}))
    wait_until(lambda: supervisor.state("sleeper") == "RUNNING", 10, "sleeper")
    assert supervisor.pid("sleeper") not in {None, first}

    assert supervisor.stop("sleeper") == ["sleeper"]
    assert supervisor.state("sleeper") is None


def test_wait_until_names_the_service_and_quotes_its_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("starting\nbind: address already in use\n")
    with pytest.raises(
        ServiceError, match=r"etcd: not ready within 0s; last log lines: .*address already in use"
    ):
        wait_until(lambda: False, 0, "etcd", log)


def test_wait_until_stops_at_once_when_the_process_has_exited() -> None:
    started = time.monotonic()
    with pytest.raises(ServiceError, match="dockerd: exited"):
        wait_until(lambda: False, 60, "dockerd", failed=lambda: "exited (FATAL)")
    assert time.monotonic() - started < 5


def _hello_recipe(message: str) -> GoRecipe:
    def prepare(work: Path) -> None:
        (work / "go.mod").write_text("module example.local/hello\n\ngo 1.22\n")
        (work / "main.go").write_text(
            f'package main\n\nimport "fmt"\n\nfunc main() {{ fmt.Println("{message}") }}\n'
        )

    return GoRecipe(key="hello-v1", binaries=(GoBinary("hello", "."),), prepare=prepare, inputs=(message,))


def test_a_go_recipe_builds_once_and_rebuilds_when_its_inputs_change(tmp_path: Path) -> None:
    bin_dir = build(_hello_recipe("one"), tmp_path)
    assert subprocess.run([bin_dir / "hello"], capture_output=True, text=True).stdout == "one\n"
    built_at = (bin_dir / "hello").stat().st_mtime_ns

    assert build(_hello_recipe("one"), tmp_path) == bin_dir
    assert (bin_dir / "hello").stat().st_mtime_ns == built_at  # cached: nothing rebuilt

    build(_hello_recipe("two"), tmp_path)
    assert subprocess.run([bin_dir / "hello"], capture_output=True, text=True).stdout == "two\n"


def test_cluster_pki_signs_serving_and_client_certificates_and_keeps_them(tmp_path: Path) -> None:
    pki = ClusterPKI(tmp_path / "pki", "10.96.0.1")
    pki.ensure({"admin": ("flyte-infra-admin", "system:masters")})
    ca = x509.load_pem_x509_certificate(pki.path("ca.crt").read_bytes())
    serving = x509.load_pem_x509_certificate(pki.path("apiserver.crt").read_bytes())
    admin = x509.load_pem_x509_certificate(pki.path("admin.crt").read_bytes())
    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.96.0.1"}
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert oct(pki.path("admin.key").stat().st_mode & 0o777) == "0o600"

    before = pki.path("admin.crt").read_bytes()
    pki.ensure({"admin": ("flyte-infra-admin", "system:masters")})
    assert pki.path("admin.crt").read_bytes() == before


def test_mirrors_are_the_ones_apt_uses() -> None:
    main, security = mirrors("bookworm")
    assert main.startswith("http") and security.startswith("http")
    assert main != security


def test_an_installed_pulumi_is_used_only_at_the_pinned_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "pulumi"
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    fake.write_text(f"#!/bin/sh\necho v{PULUMI_VERSION}\n")
    fake.chmod(0o755)
    assert _installed("pulumi", f"v{PULUMI_VERSION}") == fake
    fake.write_text("#!/bin/sh\necho v3.100.0\n")
    assert _installed("pulumi", f"v{PULUMI_VERSION}") is None


def test_gpu_nodes_offer_their_gpus_behind_the_nvidia_taint_with_every_preset_label() -> None:
    node = _gpu_node(NODES[0])
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert {
        "nvidia.com/gpu.product",
        "cloud.google.com/gke-accelerator",
        "k8s.amazonaws.com/accelerator",
    } <= set(node["metadata"]["labels"])
    products = {gpu.product for gpu in NODES}
    assert {"NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB", "NVIDIA-A100-SXM4-80GB"} <= products
    assert CPU_NODES
