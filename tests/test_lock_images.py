"""Issue 15 on the real dockerd and registry: images install exactly the lock, a parent's pin wins in
its children's images too, a conflict stops before any build, and a rebuild without the layer cache
pushes no package bytes when only code changed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flyte_infra.cli import main
from flyte_infra.docker.build import build_images
from flyte_infra.loader import load_program
from flyte_infra.packaging.resolve import program_lock

from .images import docker, installed_versions, manifest_layers, stack_for
from .locks import CONFLICTING_DAG

pytestmark = pytest.mark.docker

CHAIN = """
from flyte_infra import TaskEnvironment

data = TaskEnvironment("data", packages=["six>=1.10", "idna"])
train = TaskEnvironment("train", packages=["six==1.16.0", "idna", "attrs"], depends_on=[data])
serve = TaskEnvironment("serve", packages=["six==1.16.0", "idna", "attrs", "iniconfig"], depends_on=[train])


@data.task
def load(n: int) -> int:
    return n + {extra}
"""


def _chain(folder: Path, extra: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lockchain.py").write_text(textwrap.dedent(CHAIN.format(extra=extra)))
    return folder / "lockchain.py"


@pytest.fixture(scope="module")
def chain_images(docker_services, tmp_path_factory) -> tuple[dict[str, str], object]:
    folder = tmp_path_factory.mktemp("chain")
    program = load_program(str(_chain(folder)))
    lock = program_lock(program)
    settings = stack_for(program, docker_services.environment()["FLYTE_INFRA_BASE_IMAGE"])
    return build_images(program, settings, folder / "build", lock=lock), lock


def test_every_image_installs_exactly_its_closure_of_the_lock(chain_images):
    refs, lock = chain_images
    for environment, ref in refs.items():
        expected = {package.name: package.version for package in lock.closure(environment)}
        assert installed_versions(ref) == expected, environment


def test_a_parent_pin_the_child_admits_wins_in_both_images(chain_images):
    refs, _ = chain_images
    assert {env: installed_versions(ref)["six"] for env, ref in refs.items()} == dict.fromkeys(refs, "1.16.0")


def test_a_chain_stores_each_package_layer_once(chain_images):
    refs, _ = chain_images
    # base and /etc first; the runtime and the code last
    package_layers = {name: manifest_layers(refs[name])[2:-2] for name in ("data", "train", "serve")}
    assert len(package_layers["serve"]) == 3
    assert (
        package_layers["serve"][:2] == package_layers["train"]
        and package_layers["train"][:1] == package_layers["data"]
    )


def test_a_rebuild_without_the_layer_cache_pushes_no_package_bytes_when_only_code_changed(
    docker_services, tmp_path
):
    base = docker_services.environment()["FLYTE_INFRA_BASE_IMAGE"]
    first = load_program(str(_chain(tmp_path / "v1", extra=1)))
    before = build_images(first, stack_for(first, base), tmp_path / "build1", lock=program_lock(first))
    docker("builder", "prune", "-af")
    second = load_program(str(_chain(tmp_path / "v2", extra=2)))
    refs = build_images(
        second, stack_for(second, base), tmp_path / "build2", lock=program_lock(second), no_cache=True
    )
    for environment in ("data", "serve"):
        old, new = manifest_layers(before[environment]), manifest_layers(refs[environment])
        assert old != new  # the code changed: a new image
        packages = slice(2, len(new) - 2)  # base and /etc before; runtime and code after
        assert new[packages] == old[packages] and len(new[packages]) >= 1


def test_a_conflicting_dag_fails_at_preflight_before_any_build(tmp_path, capsys, docker_services):
    module = tmp_path / "clashing.py"
    module.write_text(CONFLICTING_DAG)
    (tmp_path / "Pulumi.yaml").write_text("name: clash\nruntime: python\n")
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  flyte-infra:module: clashing.py\n")
    assert main(["build", str(module), "--stack", "dev", "--project", str(tmp_path)]) == 1
    assert "packages cannot be resolved" in capsys.readouterr().err
    assert not (tmp_path / ".flyte-infra").exists()


def test_in_a_diamond_a_side_layer_is_the_same_layer_above_either_neighbour(docker_services, tmp_path):
    module = tmp_path / "lockdiamond.py"
    module.write_text(
        textwrap.dedent("""
        from flyte_infra import TaskEnvironment
        root = TaskEnvironment("root", packages=["six==1.16.0"])
        left = TaskEnvironment("left", packages=["six==1.16.0", "pyparsing"], depends_on=[root])
        right = TaskEnvironment("right", packages=["six==1.16.0", "attrs"], depends_on=[root])
        top = TaskEnvironment(
            "top", packages=["six==1.16.0", "pyparsing", "attrs", "iniconfig"], depends_on=[left, right]
        )
        """)
    )
    program = load_program(str(module))
    lock = program_lock(program)
    settings = stack_for(program, docker_services.environment()["FLYTE_INFRA_BASE_IMAGE"])
    refs = build_images(program, settings, tmp_path / "build", lock=lock, push=False)
    diff_ids = {
        env: docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", refs[env]).stdout
        for env in ("right", "top")
    }
    position = {  # after the base's layer and /etc's come the package layers, in the lock's order
        env: 2 + [layer.users for layer in lock.group(env).layers(env)].index(("right", "top"))
        for env in ("right", "top")
    }
    assert (position["right"], position["top"]) == (3, 4)  # above the root's layer; above left's
    right_layer = json.loads(diff_ids["right"])[position["right"]]
    assert json.loads(diff_ids["top"])[position["top"]] == right_layer
