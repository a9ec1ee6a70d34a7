"""Real image builds on the project's dockerd: the previous design against the current one, on two DAGs.

The DAGs: a chain, data (numpy==1.26.4, pandas) <- train (+ scikit-learn) <- serve (+ fastapi,
uvicorn), each environment listing its dependency's packages and its own; and a diamond, root
(numpy==1.26.4) <- left (+ pandas) and right (+ scikit-learn) <- top (all of them).

The previous design (before c034116, `_old_dockerfile` below) built each environment on its own with
the classic builder (`docker build --network host`): `pip install` of the worker runtime's
requirements, then of the runtime and the packages, resolved by pip per image. The current one
(`flyte_infra.docker.build.build_images`) resolves one lock per DAG with uv and installs it with
BuildKit, no network, in package layers shared along the DAG and keyed by their content.

Measured for each design and DAG, in one run:

1. cold build of every image: the daemon's build cache pruned and the DAG's images removed first.
   The lock is resolved and its wheels downloaded before the clock starts (a committed lock and a
   warm ~/.cache/flyte-infra/wheels, as on a developer's machine or a CI cache); the previous design
   downloads from PyPI in its RUN steps, with --no-cache-dir, as it always did;
2. build + push: the cold build plus pushing every image to the local registry (new repositories
   each run, so no run sees another's blobs);
3. registry bytes above the base: the unique compressed blobs (layers and configs) the DAG's
   manifests reference, less the base image's;
4. pull: the DAG's images removed from the daemon (the base kept) and the build cache pruned (it
   keeps the layers of removed images), then `docker pull` of each, timed;
   bytes are the unique layer blobs above the base, and the bytes the registry actually served (its
   access log), which counts a blob pulled twice twice;
5. import time of the packages in the DAG's top image (serve, top): median of 3 runs;
6. versions: what importlib.metadata finds first on sys.path inside each image against the lock's
   closure of its environment;
7. diamond only: whether right's package layer has the same diffID in the right image and in the
   top image, where other layers lie below it: a layer's bytes do not depend on what lies below it.

Targets: cold build of the chain >= 4x faster; registry bytes of the chain >= 2x fewer; every
current image's versions identical to the lock; import time not worse (within 15%, for noise).
The previous benchmark's rebuild ratio and runtime layer size are gone: the ratio needs more builds
than the time allows, and the runtime's requirements now sit in the package layers.

    python benchmarks/bench_images.py      (starts dockerd and the registry if they do not answer)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flyte_infra.artifacts.dockerfile import (
    RUNTIME_REQUIREMENTS,
    WORKER_MODULE,
    image_spec,
    write_build_context,
)
from flyte_infra.deploy.settings import StackSettings
from flyte_infra.docker.build import build_images
from flyte_infra.loader import Program, load_program
from flyte_infra.packaging.lock import Lock
from flyte_infra.packaging.resolve import program_lock
from flyte_infra.packaging.wheels import fetch_wheel

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from flyte_infra.devbox.cli import start_docker_services  # noqa: E402

REGISTRY = "127.0.0.1:5000"
BASE_IMAGE = f"{REGISTRY}/flyte-infra/python:3.11-bookworm"
REPOSITORY_PREFIX = "flyte-infra/bench-images"
REGISTRY_LOG = Path("/run/flyte-infra/logs/registry.log")

_HEADER = 'import flyte_infra as flyte\n\nIMAGE = "python:3.11-slim-bookworm"\n\n'
CHAIN = _HEADER + (
    'data = flyte.TaskEnvironment(name="data", image=IMAGE, packages=["numpy==1.26.4", "pandas"])\n'
    "train = flyte.TaskEnvironment(\n"
    '    name="train", image=IMAGE, packages=["numpy==1.26.4", "pandas", "scikit-learn"], depends_on=[data]\n'
    ")\n"
    "serve = flyte.TaskEnvironment(\n"
    '    name="serve",\n'
    "    image=IMAGE,\n"
    '    packages=["numpy==1.26.4", "pandas", "scikit-learn", "fastapi", "uvicorn"],\n'
    "    depends_on=[train],\n"
    ")\n"
)
DIAMOND = _HEADER + (
    'root = flyte.TaskEnvironment(name="root", image=IMAGE, packages=["numpy==1.26.4"])\n'
    'left = flyte.TaskEnvironment(name="left", image=IMAGE, packages=["numpy==1.26.4", "pandas"], '
    "depends_on=[root])\n"
    "right = flyte.TaskEnvironment(\n"
    '    name="right", image=IMAGE, packages=["numpy==1.26.4", "scikit-learn"], depends_on=[root]\n'
    ")\n"
    "top = flyte.TaskEnvironment(\n"
    '    name="top",\n'
    "    image=IMAGE,\n"
    '    packages=["numpy==1.26.4", "pandas", "scikit-learn"],\n'
    "    depends_on=[left, right],\n"
    ")\n"
)


@dataclass(frozen=True)
class Dag:
    name: str
    source: str
    top: str
    """The environment whose image carries every package (its imports are timed)."""
    imports: str


DAGS = (
    Dag("chain", CHAIN, "serve", "numpy, pandas, sklearn, fastapi, uvicorn"),
    Dag("diamond", DIAMOND, "top", "numpy, pandas, sklearn"),
)


@dataclass
class Result:
    build: float = 0.0
    push: float = 0.0
    registry_bytes: int = 0
    pull: float = 0.0
    pull_bytes: int = 0
    served_bytes: int | None = None
    imports: float = 0.0
    mismatches: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def docker(
    *args: str, client: str = "docker", env: dict[str, str] | None = None, timeout: float = 1800
) -> str:
    completed = subprocess.run(
        [client, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if completed.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed: {completed.stderr.strip()[-2000:]}")
    return completed.stdout


def ensure_services() -> None:
    """The project's dockerd and registry: used as they are when they answer (bringing them up takes
    the devbox lock, which a toolchain build may hold for minutes), else started."""
    os.environ.setdefault("DOCKER_HOST", "unix:///run/flyte-infra/docker.sock")
    try:
        docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE, timeout=30)
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=10).close()
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        start_docker_services()


# --- the previous design (5c0605a:flyte_infra/artifacts/dockerfile.py), for comparison only ---------

_OLD_PIP = (
    "env -u PIP_EXTRA_INDEX_URL -u PIP_FIND_LINKS -u PIP_TRUSTED_HOST PIP_CONFIG_FILE=/dev/null "
    'pip install --no-input --no-cache-dir --disable-pip-version-check --index-url "$PIP_INDEX_URL"'
)


def _old_dockerfile(base_image: str, packages: Sequence[str], module_name: str, port: int) -> str:
    """The Dockerfile of the previous design, for environments without flyte.Image layers: pip
    resolves and downloads in the build, once per image, on the classic builder."""
    runtime = " ".join(shlex.quote(requirement) for requirement in RUNTIME_REQUIREMENTS)
    lines = [
        "# Generated by flyte-infra; the tag of this image is the hash of its whole build context.",
        f"FROM {base_image}",
        "# the one package index RUN steps use: the base image's PIP_INDEX_URL, else this argument",
        "ARG PIP_INDEX_URL=https://pypi.org/simple",
        f"RUN {_OLD_PIP} --no-compile {runtime}",
    ]
    if packages:
        lines += [
            "# the runtime's requirements again: pip resolves them with the packages, or fails the build",
            f"RUN {_OLD_PIP} {runtime} " + " ".join(shlex.quote(package) for package in packages),
        ]
    lines += [
        "COPY runtime/ /opt/flyte-infra/runtime/",
        "COPY code/ /opt/flyte-infra/code/",
        "ENV PYTHONPATH=/opt/flyte-infra/runtime:/opt/flyte-infra/code PYTHONUNBUFFERED=1 "
        f"PYTHONDONTWRITEBYTECODE=1 FLYTE_INFRA_MODULE={module_name}",
        "ENV HOME=/tmp XDG_CACHE_HOME=/tmp/.cache",
        "USER 1000:1000",
        f"EXPOSE {port}",
        f'ENTRYPOINT ["python", "-m", "{WORKER_MODULE}"]',
    ]
    return "\n".join(lines) + "\n"


def old_build(
    program: Program, settings: StackSettings, lock: Lock, workdir: Path
) -> tuple[dict[str, str], int]:
    """Every environment's image the previous way: the current context's runtime/ and code/, the old
    Dockerfile, `docker build --network host` on the classic builder. Returns the image names and
    how many steps hit the build cache (only the runtime step of a second image should)."""
    names = {}
    cached = 0
    for environment in program.environments:
        spec = image_spec(environment, program, settings, lock)
        context = write_build_context(spec, workdir / f"old-{environment.name}")
        (context / "Dockerfile").write_text(
            _old_dockerfile(spec.base_image, spec.packages, program.module_name, settings.port)
        )
        name = f"{settings.registry}/{settings.repository}:{environment.name}"
        output = docker(
            "build", "--network", "host", "--tag", name, str(context), env={"DOCKER_BUILDKIT": "0"}
        )
        cached += output.count("Using cache")
        names[environment.name] = name
    return names, cached


def old_push(names: Iterable[str]) -> dict[str, str]:
    digests = {}
    for name in names:
        docker("push", "--quiet", name)
        repository = name.rsplit(":", 1)[0]
        refs = docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", name)
        digests[name] = next(
            f"{name}@{ref.split('@')[1]}" for ref in refs.split() if ref.startswith(repository + "@")
        )
    return digests


# --- registry and daemon ------------------------------------------------------------------------------

_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def manifest_blobs(reference: str) -> tuple[dict[str, int], dict[str, int]]:
    """(layer digest -> compressed size, config digest -> size) of an image in the local registry,
    `registry/repository:tag` or `...@sha256:...`."""
    name, _, digest = reference.partition("@")
    repository, _, tag = name.split("/", 1)[1].rpartition(":")
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{digest or tag}", headers={"Accept": _MANIFEST}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        manifest = json.load(response)
    layers = {layer["digest"]: layer["size"] for layer in manifest["layers"]}
    return layers, {manifest["config"]["digest"]: manifest["config"]["size"]}


def registry_log_offset() -> int | None:
    try:
        return REGISTRY_LOG.stat().st_size
    except OSError:
        return None


def served_blob_bytes(offset: int | None, repository: str) -> int | None:
    """Bytes of the blobs of `repository` the registry served since `offset` of its access log."""
    if offset is None:
        return None
    try:
        with REGISTRY_LOG.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return None
    pattern = re.compile(rf'"GET /v2/{re.escape(repository)}/blobs/sha256:[0-9a-f]+ HTTP/[0-9.]+" 200 (\d+)')
    return sum(int(size) for size in pattern.findall(text))


def remove_images(names: Iterable[str]) -> None:
    for name in dict.fromkeys(names):
        if image_exists(name):
            docker("image", "rm", "--force", name)


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def remove_earlier_runs() -> None:
    """Images of earlier runs of this benchmark: the classic builder would take them as cache."""
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split()
    remove_images(name for name in listed if name.startswith(f"{REGISTRY}/{REPOSITORY_PREFIX}/"))


def cold_start(names: Iterable[str]) -> None:
    docker("builder", "prune", "--all", "--force")
    remove_images(names)


def in_image(image: str, code: str) -> str:
    return docker("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", code).strip()


def import_seconds(image: str, modules: str) -> float:
    code = f"import time; t = time.perf_counter(); import {modules}; print(time.perf_counter() - t)"
    return statistics.median(float(in_image(image, code)) for _ in range(3))


_VERSIONS = (
    "import importlib.metadata as m, json, re\n"
    "seen = {}\n"
    "for d in m.distributions():\n"
    "    seen.setdefault(re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(), d.version)\n"
    "print(json.dumps(seen))"
)


def version_mismatches(image: str, lock: Lock, environment: str) -> list[str]:
    """`name lock!=found` for each package of the environment's closure the image does not have first
    on sys.path at the locked version."""
    found = json.loads(in_image(image, _VERSIONS))
    problems = []
    for package in lock.closure(environment):
        name = re.sub(r"[-_.]+", "-", package.name).lower()
        if found.get(name) != package.version:
            problems.append(f"{name} {package.version}!={found.get(name)}")
    return problems


def diff_ids(image: str) -> list[str]:
    ids: list[str] = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image))
    return ids


# --- one DAG, both designs ------------------------------------------------------------------------------


def measure(dag: Dag, folder: Path, run: str, base_blobs: set[str], base_layers: int) -> dict[str, Result]:
    (folder / f"{dag.name}.py").write_text(dag.source)
    program = load_program(str(folder / f"{dag.name}.py"))
    start = time.perf_counter()
    lock = program_lock(program, write=False)
    resolved = time.perf_counter() - start
    for group in lock.groups:  # warm wheel cache: the lock is committed and its wheels cached
        for package in group.packages.values():
            fetch_wheel(package)
    print(
        f"[{dag.name}] lock resolved in {resolved:.1f} s (not in the build times); wheels cached", flush=True
    )
    results = {}
    for way in ("old", "new"):
        repository = f"{REPOSITORY_PREFIX}/{run}/{dag.name}-{way}"
        settings = StackSettings.from_config(
            {
                "module": program.module_name,
                "baseImages": {"python:3.11-slim-bookworm": BASE_IMAGE},
                "repository": repository,
            },
            stack="bench",
        )
        workdir = folder / f"{dag.name}-{way}"
        result = Result()
        specs = {env.name: image_spec(env, program, settings, lock) for env in program.environments}
        expected = [spec.image_name(settings) for spec in specs.values()]
        expected += [f"{REGISTRY}/{repository}:{env.name}" for env in program.environments]
        cold_start(expected)

        start = time.perf_counter()
        if way == "old":
            names, cached = old_build(program, settings, lock, workdir)
            result.notes.append(f"classic-builder cache hits {cached}")
        else:
            names = build_images(program, settings, workdir, push=False, lock=lock)
        result.build = time.perf_counter() - start
        print(f"[{dag.name}/{way}] cold build {result.build:.1f} s", flush=True)

        start = time.perf_counter()
        if way == "old":
            pushed = old_push(names.values())
            references = {env: pushed[name] for env, name in names.items()}
        else:  # the images are built: build_images finds every step cached and pushes
            references = build_images(program, settings, workdir, push=True, lock=lock)
        result.push = time.perf_counter() - start

        layers: dict[str, int] = {}
        configs: dict[str, int] = {}
        for reference in references.values():
            image_layers, config = manifest_blobs(reference)
            layers.update(image_layers)
            configs.update(config)
        above = {digest: size for digest, size in layers.items() if digest not in base_blobs}
        result.registry_bytes = sum(above.values()) + sum(configs.values())
        result.pull_bytes = sum(above.values())

        if way == "new" and dag.name == "diamond":
            shared = next(
                layer for layer in lock.group("right").layers("right") if layer.users == ("right", "top")
            )
            positions = {
                env: base_layers + 1 + [layer.key for layer in specs[env].layers].index(shared.key)
                for env in ("right", "top")
            }
            right_ids, top_ids = diff_ids(names["right"]), diff_ids(names["top"])
            same = right_ids[positions["right"]] == top_ids[positions["top"]]
            below_differs = right_ids[: positions["right"]] != top_ids[: positions["top"]]
            result.notes.append(
                f"right's layer ({', '.join(p.name for p in shared.packages)}) "
                f"at rootfs #{positions['right']} "
                f"of right and #{positions['top']} of top: diffID {'identical' if same else 'DIFFERENT'}"
                f" ({right_ids[positions['right']][7:19]} / {top_ids[positions['top']][7:19]}), "
                f"layers below {'differ' if below_differs else 'identical'}"
            )

        # an empty store: BuildKit's cache keeps the layers of removed images, and a pull skips them
        cold_start(list(names.values()) + [ref.split("@")[0] for ref in references.values()])
        offset = registry_log_offset()
        start = time.perf_counter()
        for reference in dict.fromkeys(references.values()):
            docker("pull", "--quiet", reference)
        result.pull = time.perf_counter() - start
        result.served_bytes = served_blob_bytes(offset, repository)

        top_image = references[dag.top]
        result.imports = import_seconds(top_image, dag.imports)
        for env, reference in references.items():
            problems = version_mismatches(reference, lock, env)
            if problems:
                result.mismatches[env] = problems
        print(
            f"[{dag.name}/{way}] push {result.push:.1f} s, registry {result.registry_bytes / 1e6:.1f} MB, "
            f"pull {result.pull:.1f} s {result.pull_bytes / 1e6:.1f} MB, import {result.imports:.2f} s, "
            f"versions off the lock: {result.mismatches or 'none'}; {'; '.join(result.notes)}",
            flush=True,
        )
        remove_images([ref.split("@")[0] for ref in references.values()] + list(references.values()))
        results[way] = result
    return results


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f}"


def main() -> None:
    started = time.perf_counter()
    ensure_services()
    remove_earlier_runs()
    run = time.strftime("r%Y%m%d%H%M%S")
    base_layers, _ = manifest_blobs(BASE_IMAGE)
    base_blob_set = set(base_layers)
    base_count = len(diff_ids(BASE_IMAGE))
    folder = Path(tempfile.mkdtemp(prefix="bench-images-"))
    results = {dag.name: measure(dag, folder, run, base_blob_set, base_count) for dag in DAGS}

    rows: list[tuple[str, Callable[[Result], str]]] = [
        ("cold build, s", lambda r: f"{r.build:.1f}"),
        ("build + push, s", lambda r: f"{r.build + r.push:.1f}"),
        ("registry above base, MB", lambda r: _mb(r.registry_bytes)),
        ("pull, s", lambda r: f"{r.pull:.1f}"),
        ("pull, unique MB", lambda r: _mb(r.pull_bytes)),
        ("pull, MB served (registry log)", lambda r: _mb(r.served_bytes)),
        ("import of top image, s (median of 3)", lambda r: f"{r.imports:.2f}"),
        ("images off the lock", lambda r: str(len(r.mismatches))),
    ]
    print()
    print("| measure | chain old | chain new | diamond old | diamond new |")
    print("|---|---|---|---|---|")
    for label, show in rows:
        cells = [show(results[dag.name][way]) for dag in DAGS for way in ("old", "new")]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    for dag in DAGS:
        for way in ("old", "new"):
            for env, problems in results[dag.name][way].mismatches.items():
                print(f"{dag.name}/{way} {env} off the lock: {', '.join(problems)}")
        print(f"{dag.name}/new: {'; '.join(results[dag.name]['new'].notes) or '-'}")

    chain = results["chain"]
    speedup = chain["old"].build / chain["new"].build
    fewer = chain["old"].registry_bytes / chain["new"].registry_bytes
    locked = not any(results[dag.name]["new"].mismatches for dag in DAGS)
    imports = {dag.name: results[dag.name]["new"].imports / results[dag.name]["old"].imports for dag in DAGS}
    print()
    print(
        f"{'PASS' if speedup >= 4 else 'MISS'} cold build of the chain {speedup:.1f}x faster (target >= 4x)"
    )
    print(f"{'PASS' if fewer >= 2 else 'MISS'} registry bytes of the chain {fewer:.1f}x fewer (target >= 2x)")
    print(f"{'PASS' if locked else 'MISS'} every new image's versions identical to the lock")
    ratios = ", ".join(f"{name} {ratio:.2f}" for name, ratio in imports.items())
    worse = all(ratio <= 1.15 for ratio in imports.values())
    print(f"{'PASS' if worse else 'MISS'} import time new/old: {ratios} (target <= 1.15)")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
