"""The real Pulumi engine: preview, up, refresh, destroy and promote of the bundled example.

The toolchain is the pinned one (`pulumi_toolchain` builds it into the cache when it is not
installed); images are built on the devbox's dockerd and pushed to its registry; the stacks run on
a file:// backend. Kubernetes objects are rendered to a directory by the kubernetes provider (the
stacks' render mode), so these tests need no cluster: `test_cluster.py` deploys to one.
Assertions read the engine's own event stream (the Automation API's event log), its state and
outputs, and the registry.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from pulumi import automation as auto

from flyte_infra.devbox.docker import DockerServices
from flyte_infra.devbox.toolchain import Toolchain
from flyte_infra.errors import EngineError
from flyte_infra.pulumi import TYPE_TOKEN
from flyte_infra.pulumi.automation import IMAGE_TYPE, StackRun, destroy, preview, promote, up

from .projects import copy_project, set_config

pytestmark = [pytest.mark.engine, pytest.mark.docker]


@pytest.fixture
def project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pulumi_toolchain: Toolchain,
    docker_services: DockerServices,
) -> Path:
    """A copy of the project whose stacks render to directories (no cluster)."""
    copy_project(tmp_path, monkeypatch)
    for stage in ("dev", "staging", "prod"):
        set_config(tmp_path, stage, renderDir=f".flyte-infra/rendered/{stage}", kubeconfig=None)
    return tmp_path


def _registry_tags(services: DockerServices, repository: str = "flyte-infra/environments") -> set[str]:
    try:
        with urllib.request.urlopen(
            f"http://{services.registry}/v2/{repository}/tags/list", timeout=5
        ) as answer:
            return set(json.load(answer).get("tags") or [])
    except urllib.error.HTTPError:
        return set()


def _state_resources(project: Path, stage: str) -> list[str]:
    """The types of the resources the stack's state holds (the engine's own record)."""
    stack = auto.select_stack(stage, work_dir=str(project))
    deployment = stack.export_stack().deployment or {}
    return [resource["type"] for resource in deployment.get("resources") or []]


def _window(run: StackRun, prefix: str) -> tuple[int, int]:
    """Positions in the event stream of the first begin and the last end of `prefix`'s resources."""
    mine = [i for i, (_, name) in enumerate(run.timeline) if name == prefix or name.startswith(f"{prefix}-")]
    begins = [i for i in mine if run.timeline[i][0] == "begin"]
    ends = [i for i in mine if run.timeline[i][0] == "end"]
    return min(begins), max(ends)


def _children_window(run: StackRun, environment: str) -> tuple[int, int]:
    names = {f"{environment}-{suffix}" for suffix in ("image", "deployment", "service", "networkpolicy")}
    found = [
        i for i, (_, name) in enumerate(run.timeline) if name in names or name.startswith(f"{environment}-")
    ]
    return min(found), max(found)


def test_preview_shows_one_component_per_environment_with_its_children_and_builds_nothing(
    project: Path, docker_services: DockerServices
) -> None:
    before = _registry_tags(docker_services)
    run = preview("dev", project, io.StringIO())
    components = sorted(name for _, kind, name in run.steps if kind == TYPE_TOKEN)
    assert components == ["data-prep", "pipeline", "train"]
    kinds = {kind for _, kind, _ in run.steps}
    assert {IMAGE_TYPE, "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service"} <= kinds
    assert _registry_tags(docker_services) == before


def test_up_builds_and_pushes_images_and_renders_them_by_digest_in_dependency_order(
    project: Path, docker_services: DockerServices
) -> None:
    dev = up("dev", project, io.StringIO())
    refs = dev.outputs["imageRefs"]
    assert set(refs) == {"data-prep", "train", "pipeline"}
    assert sorted(dev.names_of(IMAGE_TYPE)) == ["data-prep-image", "train-image"]  # pipeline = train's spec
    assert refs["pipeline"] == refs["train"]
    tags = _registry_tags(docker_services)
    for ref in refs.values():
        assert ref.startswith(f"{docker_services.registry}/flyte-infra/environments:") and "@sha256:" in ref
        assert ref.split(":", 2)[-1].split("@")[0] in tags

    # every resource of a dependency ended before the dependent's first child began ...
    first_pipeline_child = _children_window(dev, "pipeline")[0]
    for dependency in ("data-prep", "train"):
        assert _window(dev, dependency)[1] < first_pipeline_child
    # ... while the two environments of the first wave ran side by side
    data_start, data_end = _window(dev, "data-prep-image")
    train_start, train_end = _window(dev, "train-image")
    assert data_start < train_end and train_start < data_end

    rendered = (project / ".flyte-infra" / "rendered" / "dev").rglob("*.yaml")
    documents = [doc for path in rendered for doc in yaml.safe_load_all(path.read_text()) if doc]
    images = {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]["containers"][0]["image"]
        for doc in documents
        if doc["kind"] == "Deployment"
    }
    assert images == refs


def test_a_second_up_changes_nothing_and_a_package_change_rebuilds_only_that_image(project: Path) -> None:
    # each environment's packages come from a file of its own, so changing one environment's list
    # leaves the program's code, and so every other image, as it was
    examples = project / "examples"
    (examples / "lists.py").write_text(
        "from pathlib import Path\n"
        "import flyte_infra as flyte\n"
        "def packages(name):\n"
        "    return (Path(__file__).parent / f'{name}.txt').read_text().split()\n"
        "first = flyte.TaskEnvironment(name='first', packages=packages('first'))\n"
        "second = flyte.TaskEnvironment(name='second', packages=packages('second'))\n"
    )
    (examples / "first.txt").write_text("six>=1.16\n")
    (examples / "second.txt").write_text("idna==3.10\n")
    set_config(project, "dev", module="examples/lists.py")
    first = up("dev", project, io.StringIO())
    assert sorted(first.names_of(IMAGE_TYPE)) == ["first-image", "second-image"]

    again = up("dev", project, io.StringIO())
    assert again.names_of(IMAGE_TYPE) == []
    assert set(again.summary) == {"same"}

    (examples / "first.txt").write_text("six>=1.16\nattrs>=23\n")  # not in the runtime's closure
    third = up("dev", project, io.StringIO())
    assert third.names_of(IMAGE_TYPE) == ["first-image"]
    assert third.outputs["imageRefs"]["second"] == first.outputs["imageRefs"]["second"]
    assert third.outputs["imageRefs"]["first"] != first.outputs["imageRefs"]["first"]


def test_destroy_removes_every_resource_and_rendered_file(project: Path) -> None:
    # refresh reads objects back from a cluster: test_deploy_cluster.py runs it there
    up("dev", project, io.StringIO())
    destroy("dev", project, io.StringIO())
    assert _state_resources(project, "dev") == []
    assert list((project / ".flyte-infra" / "rendered" / "dev").rglob("*.yaml")) == []


def test_promote_deploys_the_dev_digests_without_an_image_step(project: Path) -> None:
    dev = up("dev", project, io.StringIO())
    staging = promote("dev", "staging", project, io.StringIO())
    assert [step for step in staging.steps if step[1] == IMAGE_TYPE] == []
    assert staging.outputs["imageRefs"] == dev.outputs["imageRefs"]


def test_up_with_a_preflight_failure_creates_nothing_and_says_why(project: Path) -> None:
    (project / "examples" / "broken.py").write_text(
        "import flyte_infra as flyte\n"
        "child = flyte.TaskEnvironment(name='child', packages=['torch>=2.2'])\n"
        "parent = flyte.TaskEnvironment(name='parent', packages=['torch==2.0'], depends_on=[child])\n"
    )
    set_config(project, "dev", module="examples/broken.py")
    with pytest.raises(EngineError, match="package 'torch'") as failure:
        up("dev", project, io.StringIO())
    assert "Traceback" not in str(failure.value)
    assert [kind for _, kind, _ in failure.value.run.steps if kind != "pulumi:pulumi:Stack"] == []
    assert _state_resources(project, "dev") in ([], ["pulumi:pulumi:Stack"])


def test_the_cli_previews_through_the_engine_with_a_progress_display(project: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "flyte_infra.cli", "preview", "--stack", "dev", "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    assert "create" in completed.stdout and TYPE_TOKEN in completed.stdout


def test_up_that_skips_checkpoints_records_the_same_resources(project: Path) -> None:
    fast = up("dev", project, io.StringIO(), skip_checkpoints=True)
    assert sorted(fast.names_of(IMAGE_TYPE)) == ["data-prep-image", "train-image"]
    recorded = _state_resources(project, "dev")
    assert recorded.count(TYPE_TOKEN) == 3 and recorded.count("kubernetes:apps/v1:Deployment") == 3
    assert set(up("dev", project, io.StringIO()).summary) == {"same"}
