"""The devbox's Docker side: a private dockerd, a loopback registry and the Python base image.

dockerd runs with no bridge and no iptables rules, on a socket of the project's own; containers
and builds use the host network. Its own HTTP(S) proxy is a closed loopback port, so it reaches the
loopback registry and nothing else: a pull from any other registry fails at once, with no DNS
lookup (build steps do not inherit this, so pip in a build still reaches the package index).
No image can be pulled here, so the base image is made with debootstrap
(`scripts/base-rootfs.sh`), with the machine's CA bundle inside, and cached as a tarball.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServiceError
from .apt import mirrors
from .layout import Layout
from .report import step
from .supervisor import Program, Supervisor, wait_until

__all__ = ["DockerServices"]

SUITE = "bookworm"
BASE_REPOSITORY = "flyte-infra/python"
BASE_TAG = "3.11-bookworm"
BASE_KEY_LABEL = "org.flyte-infra.base-key"
IMAGE_CA = "/etc/ssl/certs/ca-certificates.crt"
CLOSED_PROXY = "http://127.0.0.1:9"
"""The discard port, where nothing listens: dockerd's proxy for every non-loopback address."""

PACKAGES = (
    "docker.io",
    "docker-registry",
    "debootstrap",
    "containerd",
    "runc",
    "tini",
    "iproute2",
    "curl",
    "ca-certificates",
)
ROOTFS_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "base-rootfs.sh"
BASE_ENVIRONMENT = {
    "PATH": "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "VIRTUAL_ENV": "/opt/venv",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_CERT": IMAGE_CA,
    "SSL_CERT_FILE": IMAGE_CA,
    "REQUESTS_CA_BUNDLE": IMAGE_CA,
}
"""The base image's environment; with the rootfs script, it is the image's recipe (its key)."""


@dataclass(frozen=True)
class DockerServices:
    """dockerd, the registry and the base image, for one devbox layout.

    Args:
        layout: the devbox's folders.
        registry_port: the registry's port on 127.0.0.1 (`FLYTE_INFRA_REGISTRY_PORT`, 5000).
    """

    layout: Layout
    registry_port: int = int(os.environ.get("FLYTE_INFRA_REGISTRY_PORT", "5000"))

    @property
    def socket(self) -> str:
        return f"unix://{self.layout.run / 'docker.sock'}"

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    @property
    def base_image(self) -> str:
        return f"{BASE_REPOSITORY}:{BASE_TAG}"

    @property
    def base_image_remote(self) -> str:
        return f"{self.registry}/{self.base_image}"

    def environment(self) -> dict[str, str]:
        """What points tools at these services."""
        return {
            "DOCKER_HOST": self.socket,
            "FLYTE_INFRA_REGISTRY": self.registry,
            "FLYTE_INFRA_BASE_IMAGE": self.base_image_remote,
        }

    # ---------------------------------------------------------------- up

    def up(self, supervisor: Supervisor) -> bool:
        """Start dockerd and the registry and make the base image; True if the image changed."""
        supervisor.ensure_running(self._dockerd(), self._registry())
        _await_ready(supervisor, "dockerd", self.dockerd_up, 60, f"up on {self.socket}")
        _await_ready(supervisor, "registry", self.registry_up, 30, f"up on http://{self.registry}")
        changed = self._ensure_base_image()
        self._push_base()
        return changed

    def _dockerd(self) -> Program:
        run, state = self.layout.run, self.layout.state
        (state / "docker").mkdir(parents=True, exist_ok=True)
        (run / "docker-exec").mkdir(parents=True, exist_ok=True)
        config = run / "daemon.json"
        if not config.is_file():  # our own, so a host /etc/docker/daemon.json adds nothing
            config.write_text("{}\n")
        return Program(
            name="dockerd",
            command=[
                "/usr/sbin/dockerd",
                "--config-file",
                str(config),
                "--host",
                self.socket,
                "--data-root",
                str(state / "docker"),
                "--exec-root",
                str(run / "docker-exec"),
                "--pidfile",
                str(run / "dockerd.pid"),
                "--containerd-namespace",
                "flyte-infra",
                "--containerd-plugins-namespace",
                "flyte-infra-plugins",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ],
            environment={
                "HTTP_PROXY": CLOSED_PROXY,
                "HTTPS_PROXY": CLOSED_PROXY,
                "NO_PROXY": "127.0.0.1,localhost,::1",
            },
            stop_wait=30,
        )

    def _registry(self) -> Program:
        storage = self.layout.state / "registry"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.layout.run / "registry.yml"
        config.write_text(
            json.dumps(
                {  # JSON is YAML: the registry reads it as its config file
                    "version": 0.1,
                    "log": {"level": "info", "fields": {"service": "flyte-infra-registry"}},
                    "storage": {
                        "filesystem": {"rootdirectory": str(storage)},
                        "delete": {"enabled": True},
                        "cache": {"blobdescriptor": "inmemory"},
                    },
                    "http": {"addr": self.registry, "headers": {"X-Content-Type-Options": ["nosniff"]}},
                },
                indent=2,
            )
            + "\n"
        )
        return Program(name="registry", command=["/usr/bin/docker-registry", "serve", str(config)])

    # ------------------------------------------------------------ probes

    def docker(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        completed = subprocess.run(
            ["docker", "-H", self.socket, *args], capture_output=True, text=True, timeout=timeout
        )
        if check and completed.returncode != 0:
            raise ServiceError("dockerd", f"docker {args[0]} failed: {completed.stderr.strip()}")
        return completed.stdout.strip()

    def dockerd_up(self) -> bool:
        try:
            proxy = self.docker("info", "--format", "{{.HTTPSProxy}}", timeout=10, check=False)
        except subprocess.TimeoutExpired:
            return False
        return proxy == CLOSED_PROXY

    def registry_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.registry}/v2/", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def registry_digest(self, repository: str, tag: str) -> str | None:
        """The manifest digest the registry holds for `repository:tag`."""
        request = urllib.request.Request(
            f"http://{self.registry}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={
                "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                "application/vnd.oci.image.manifest.v1+json"
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                digest: str | None = response.headers.get("Docker-Content-Digest")
                return digest
        except (urllib.error.URLError, OSError):
            return None

    # -------------------------------------------------------- base image

    def base_key(self) -> str:
        """A digest of everything that decides the base image: the recipe (rootfs script and
        environment), mirrors, CPU architecture and the CA bundle. A new key means a new tarball
        and image."""
        main, security = mirrors(SUITE)
        architecture = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True
        ).stdout.strip()
        digest = hashlib.sha256()
        for part in (
            ROOTFS_SCRIPT.read_bytes(),
            json.dumps(BASE_ENVIRONMENT, sort_keys=True).encode(),
            main.encode(),
            security.encode(),
            architecture.encode(),
            _ca_bundle().read_bytes(),
        ):
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()[:16]

    def _ensure_base_image(self) -> bool:
        started = time.monotonic()
        key = self.base_key()
        label = '{{ index .Config.Labels "' + BASE_KEY_LABEL + '" }}'
        if self.docker("image", "inspect", "-f", label, self.base_image, check=False) == key:
            step("base", f"{self.base_image} present (key {key})", started)
            return False
        cache = self.layout.cache / "base"
        tarball = cache / f"python-{BASE_TAG}-{key}.tar.gz"
        if not tarball.is_file():
            log = self.layout.logs / "base-build.log"
            main, security = mirrors(SUITE)
            step("base", f"debootstrap {SUITE} from {main} (log: {log})")
            with log.open("w") as out:
                completed = subprocess.run(
                    ["bash", str(ROOTFS_SCRIPT), str(tarball), main, security, str(_ca_bundle())],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            if completed.returncode:
                raise ServiceError("base", "building the root filesystem failed", log=log)
        for stale in cache.glob(f"python-{BASE_TAG}-*.tar.gz"):
            if stale != tarball:
                stale.unlink()
        changes = [f"ENV {name}={value}" for name, value in BASE_ENVIRONMENT.items()]
        changes += [
            f"LABEL {BASE_KEY_LABEL}={key}",
            f"LABEL org.opencontainers.image.title={self.base_image}",
            'CMD ["python3"]',
        ]
        # USER stays root: generated Dockerfiles install as root, then switch to USER 1000 themselves.
        self.docker(
            "import",
            *[arg for change in changes for arg in ("--change", change)],
            str(tarball),
            self.base_image,
        )
        step("base", f"imported {self.base_image} from {tarball}", started)
        return True

    def _push_base(self) -> None:
        started = time.monotonic()
        remote = self.registry_digest(BASE_REPOSITORY, BASE_TAG)
        local = self.docker(
            "image", "inspect", "-f", '{{ join .RepoDigests " " }}', self.base_image, check=False
        ).split()
        if remote is not None and f"{self.registry}/{BASE_REPOSITORY}@{remote}" in local:
            step("push", f"{self.base_image_remote} up to date ({remote})", started)
            return
        self.docker("tag", self.base_image, self.base_image_remote)
        self.docker("push", self.base_image_remote)
        step("push", f"pushed {self.base_image_remote}", started)

    # ------------------------------------------------------------ verify

    def verify(self) -> None:
        """Build FROM the base image (pip through the CA bundle, run as uid 1000), push it, and
        build FROM the registry with BuildKit; a ServiceError on the first failure."""
        if not (self.dockerd_up() and self.registry_up()):
            raise ServiceError("verify", "dockerd or the registry is not up: python -m flyte_infra.devbox up")
        selftest = f"{self.registry}/flyte-infra/selftest"
        with tempfile.TemporaryDirectory() as context:
            dockerfile = Path(context) / "Dockerfile"
            dockerfile.write_text(
                f"FROM {self.base_image}\nRUN pip install --no-cache-dir six\nUSER 1000\n"
                "RUN python -c 'import six, os; assert os.getuid() == 1000'\n"
            )
            started = time.monotonic()
            self.docker("build", "--network", "host", "-t", f"{selftest}:classic", context)
            output = self.docker(
                "run",
                "--rm",
                f"{selftest}:classic",
                "python",
                "-c",
                "import os, six; print(os.getuid(), six.__version__)",
            )
            step("verify", f"build FROM {self.base_image}, pip install six, run as uid {output}", started)
            started = time.monotonic()
            self.docker("push", f"{selftest}:classic")
            step("verify", f"push {selftest}:classic", started)
            dockerfile.write_text(f"FROM {selftest}:classic\nRUN python -c 'import six'\n")
            started = time.monotonic()
            self.docker("rmi", f"{selftest}:classic")
            self._buildkit_build(context, f"{selftest}:buildkit")
            step("verify", f"BuildKit build FROM {selftest}:classic pulled from the registry", started)
            self.docker("rmi", f"{selftest}:buildkit", check=False)

    def _buildkit_build(self, context: str, tag: str) -> None:
        """Debian's docker 20.10 client has BuildKit built in; the 28.x client needs buildx."""
        client = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
        completed = subprocess.run(
            [
                client,
                "-H",
                self.socket,
                "build",
                "--progress",
                "plain",
                "--network",
                "host",
                "-t",
                tag,
                context,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
        )
        if completed.returncode:
            raise ServiceError("verify", f"BuildKit build failed: {completed.stderr.strip()[-300:]}")


def _ca_bundle() -> Path:
    bundle = Path(os.environ.get("FLYTE_INFRA_CA_BUNDLE", IMAGE_CA))
    if not bundle.is_file():
        raise ServiceError("base", f"CA bundle {bundle} missing")
    return bundle


def _await_ready(
    supervisor: Supervisor, name: str, ready: Callable[[], bool], timeout: float, where: str
) -> None:
    """Wait until a supervised program answers (failing at once if it exits), then say where."""
    started = time.monotonic()
    wait_until(ready, timeout, name, supervisor.log_of(name), failed=lambda: _exited(supervisor, name))
    step(name, f"{where} (pid {supervisor.pid(name)})", started)


def _exited(supervisor: Supervisor, name: str) -> str | None:
    state = supervisor.state(name)
    return f"exited ({state})" if state in {"FATAL", "EXITED"} else None
