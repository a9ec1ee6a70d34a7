"""The devbox's building blocks, each for real on this machine: supervisord, Go builds, PKI, apt."""

from __future__ import annotations

import os
import subprocess
import sys
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
from flyte_infra.devbox.pythons import _dev_requirements, other_interpreters, venv_python
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


def _fake_python(path: Path, implementation: str, version: str, exit_code: int = 0) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(f'#!/bin/sh\necho "{path} {implementation} {version}"\nexit {exit_code}\n')
    path.chmod(0o755)


def test_other_interpreters_are_pyenvs_newest_cpython_of_each_minor_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = tmp_path / "pyenv" / "versions"
    _fake_python(versions / "3.19.2" / "bin" / "python3.19", "cpython", "3.19.2")
    _fake_python(versions / "3.19.10" / "bin" / "python3.19", "cpython", "3.19.10")  # newer than .2
    _fake_python(versions / "3.18.1" / "bin" / "python3.18", "pypy", "3.18.1")  # not CPython
    _fake_python(versions / "3.17.0" / "bin" / "python3.17", "cpython", "3.17.0", exit_code=1)  # broken
    running = sys.version_info
    own = f"{running.major}.{running.minor}.{running.micro}"
    _fake_python(versions / own / "bin" / f"python3.{running.minor}", "cpython", own)  # the running one
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert other_interpreters() == {"3.19.10": versions / "3.19.10" / "bin" / "python3.19"}


def test_a_test_venv_puts_the_checkout_on_its_path_and_is_made_once(tmp_path: Path) -> None:
    project = tmp_path / "checkout"
    (project / "probe_package").mkdir(parents=True)
    (project / "probe_package" / "__init__.py").write_text("NAME = 'from the checkout'\n")
    (project / "pyproject.toml").write_text('[project]\nname = "probe"\nversion = "0"\n')
    layout = Layout(run=tmp_path / "run", state=tmp_path / "state", cache=tmp_path / "cache")
    python = venv_python(Path(sys.executable), "test", project, layout)
    imported = subprocess.run(
        [python, "-c", "import probe_package, sys; print(probe_package.NAME, sys.prefix)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert imported.stdout.split(" ", 3) == [
        "from",
        "the",
        "checkout",
        f"{tmp_path}/cache/venvs/cpython-test\n",
    ]
    made = python.stat().st_mtime_ns
    assert venv_python(Path(sys.executable), "test", project, layout) == python
    assert python.stat().st_mtime_ns == made  # the venv was kept


def test_dev_requirements_expand_the_projects_own_extras(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "flyte-infra"\ndependencies = ["pydantic>=2"]\n'
        "[project.optional-dependencies]\n"
        'pulumi = ["pulumi==3.0"]\ndevbox = ["supervisor"]\n'
        'dev = ["flyte-infra[pulumi, devbox]", "pytest"]\n'
    )
    assert sorted(_dev_requirements(pyproject)) == ["pulumi==3.0", "pydantic>=2", "pytest", "supervisor"]
