"""The Pulumi adapter under mocks: every RegisterResource request the program makes is recorded."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor

from flyte_infra import FlyteInfraError, InvalidSpecError, PreflightError, TaskEnvironment
from flyte_infra.deploy.promotion import promoted_ref
from flyte_infra.deploy.settings import StackSettings
from flyte_infra.errors import StackConfigError
from flyte_infra.loader import Program, load_program
from flyte_infra.pulumi import TYPE_TOKEN, deploy, main
from flyte_infra.pulumi.program import promoted_image_refs, read_settings

from .locks import fake_lock

EXAMPLE = Path(__file__).parents[1] / "examples" / "ml_pipeline.py"
IMAGE = "docker:index/image:Image"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def fake_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Mocks(pulumi.runtime.Mocks):
    """Images get a digest from their tag; a StackReference answers with `previous_refs`."""

    def __init__(self, previous_refs: dict[str, str] | None = None) -> None:
        self.previous_refs = previous_refs or {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == IMAGE:
            repository = args.inputs["imageName"].rsplit(":", 1)[0]
            state.update(repoDigest=f"{repository}@{fake_digest(args.inputs['imageName'])}")
        if args.typ == "pulumi:pulumi:StackReference":
            state["outputs"] = {"imageRefs": self.previous_refs}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


class RecordingMonitor(MockMonitor):
    """The mock monitor, keeping each RegisterResource request (type, name, parent, dependencies)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.requests: list[Any] = []
        self.reads: list[Any] = []

    def RegisterResource(self, request: Any) -> Any:
        self.requests.append(request)
        return super().RegisterResource(request)

    def ReadResource(self, request: Any) -> Any:
        self.reads.append(request)
        return super().ReadResource(request)

    def of_type(self, type_token: str) -> dict[str, Any]:
        return {request.name: request for request in self.requests if request.type == type_token}

    def inputs(self, type_token: str) -> dict[str, dict[str, Any]]:
        return {
            urn.rsplit("::", 1)[-1]: reg.state
            for urn, reg in self.resources.items()
            if urn.split("::")[-2].endswith(type_token)
        }


@pytest.fixture
def monitor() -> RecordingMonitor:
    return use_mocks(Mocks())


@pytest.fixture(autouse=True)
def wheels(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[Any, Path]]:
    """The (layers, context) of every `write_wheels` call, which writes and downloads nothing here.

    Build contexts go under `tmp_path`, and `deploy` may not resolve a lock itself (uv, the
    network, a `<module>.lock.toml` beside the example): every test passes one."""
    calls: list[tuple[Any, Path]] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("flyte_infra.pulumi.program.write_wheels", lambda *call: calls.append(call))

    def no_resolution(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("deploy resolved a lock: pass lock=fake_lock(...)")

    monkeypatch.setattr("flyte_infra.pulumi.program.program_lock", no_resolution)
    return calls


def use_mocks(mocks: Mocks, stack: str = "dev", preview: bool = False) -> RecordingMonitor:
    asyncio.set_event_loop(asyncio.new_event_loop())  # other tests' asyncio.run leaves none behind
    recording = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="flyte-infra", stack=stack, preview=preview, monitor=recording)
    return recording


def settings(**overrides: Any) -> StackSettings:
    values = {"module": str(EXAMPLE), "namespace": "flyte-dev", "registry": "127.0.0.1:5000"} | overrides
    return StackSettings.from_config(values, stack="dev")


def component_names(urns: Any) -> set[str]:
    """The environments whose components these URNs name."""
    return {urn.rsplit("::", 1)[-1] for urn in urns if urn.split("::")[-2].endswith(TYPE_TOKEN)}


def deployed(program: Program, stack_settings: StackSettings, **options: Any) -> dict[str, str]:
    """Run `deploy` under the mocks; return each environment's resolved image ref.

    The inner function returns its Output, so pulumi.runtime.test waits for every registration.
    """
    refs: dict[str, str] = {}

    options.setdefault("worker_token", "test-token")
    options.setdefault("lock", fake_lock(program.environments))

    @pulumi.runtime.test
    def run() -> Any:
        components = deploy(program, stack_settings, **options)
        return pulumi.Output.all(**{n: c.image_ref for n, c in components.items()}).apply(refs.update)

    run()
    return refs


def registered(monitor: RecordingMonitor) -> list[str]:
    """Types of the resources registered (Stack aside) once every registration already started
    has reached the monitor: a failing program leaves its registrations pending on the loop."""
    loop = asyncio.get_event_loop()
    loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
    return [r.type for r in monitor.requests if r.type != "pulumi:pulumi:Stack"]


def children(monitor: RecordingMonitor, name: str) -> set[str]:
    return {r.type for r in monitor.requests if r.parent and component_names([r.parent]) == {name}}


def test_one_component_per_environment_with_image_and_objects(monitor: RecordingMonitor) -> None:
    refs = deployed(load_program(str(EXAMPLE)), settings())
    assert set(monitor.of_type(TYPE_TOKEN)) == {"data-prep", "train", "pipeline"}
    for name in ("data-prep", "train", "pipeline"):
        assert children(monitor, name) >= {
            "kubernetes:core/v1:ServiceAccount",
            DEPLOYMENT,
            "kubernetes:core/v1:Service",
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        }
    assert all("@sha256:" in ref for ref in refs.values())


def test_depends_on_is_recorded_between_components(monitor: RecordingMonitor) -> None:
    deployed(load_program(str(EXAMPLE)), settings())
    registered = monitor.of_type(TYPE_TOKEN)

    def dependencies(name: str) -> set[str]:
        # the SDK expands depends_on=[component] into the component's resources
        return {urn.rsplit("::", 1)[-1] for urn in registered[name].dependencies}

    upstream = {"data-prep-deployment", "data-prep-image", "train-deployment", "train-image"}
    assert upstream <= dependencies("pipeline")
    assert not any(name.startswith(("train", "pipeline")) for name in dependencies("data-prep"))
    assert not any(name.startswith(("data-prep", "pipeline")) for name in dependencies("train"))
    assert "namespace" in dependencies("train")


def test_deployment_inputs_carry_compute_gpu_and_security(monitor: RecordingMonitor) -> None:
    refs = deployed(load_program(str(EXAMPLE)), settings())
    deployments = monitor.inputs(DEPLOYMENT)
    pod = deployments["train-deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == refs["train"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["limits"]["cpu"] == "2" and container["resources"]["requests"]["cpu"] == "1"
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"][0]["values"] == ["NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    cpu_pod = deployments["data-prep-deployment"]["spec"]["template"]["spec"]
    assert "affinity" not in cpu_pod and "tolerations" not in cpu_pod


def test_images_build_only_on_up_and_identical_specs_build_once(
    monitor: RecordingMonitor, wheels: list[tuple[Any, Path]]
) -> None:
    refs = deployed(load_program(str(EXAMPLE)), settings())
    images = monitor.inputs(IMAGE)
    # train and pipeline have the same base and closure: one image serves both
    assert set(images) == {"data-prep-image", "train-image"}
    for image in images.values():
        assert image["buildOnPreview"] is False and image["skipPush"] is False
        assert image["build"]["network"] == "none" and image["build"]["builderVersion"] == "BuilderBuildKit"
        assert image["imageName"].startswith("127.0.0.1:5000/flyte-infra/environments:sha-")
    assert refs["train"] == refs["pipeline"] != refs["data-prep"]
    # each context built gets the wheels of the layers its Dockerfile mounts, once
    assert sorted(str(context) for _, context in wheels) == sorted(
        i["build"]["context"] for i in images.values()
    )
    for layers, context in wheels:
        dockerfile = (context / "Dockerfile").read_text()
        mounted = [
            line.split("source=wheels/", 1)[1].split(",", 1)[0]
            for line in dockerfile.splitlines()
            if "source=wheels/" in line
        ]
        assert mounted == [layer.key for layer in layers] != []


def test_a_preview_fetches_no_wheels(wheels: list[tuple[Any, Path]]) -> None:
    monitor = use_mocks(Mocks(), preview=True)
    deployed(load_program(str(EXAMPLE)), settings())
    assert set(monitor.inputs(IMAGE)) == {"data-prep-image", "train-image"}  # registered, not built
    assert wheels == []


def test_a_preflight_failure_registers_nothing(monitor: RecordingMonitor, tmp_path: Path) -> None:
    child = TaskEnvironment("child", packages=["torch>=2.2"])
    parent = TaskEnvironment("parent", packages=["torch==2.0"], depends_on=[child])
    program = Program("bad", (), (child, parent))
    with pytest.raises(PreflightError, match="package 'torch'"):
        deploy(program, settings(), lock=fake_lock(program.environments))
    assert registered(monitor) == []


def test_a_stack_setting_naming_no_environment_registers_nothing(monitor: RecordingMonitor) -> None:
    with pytest.raises(InvalidSpecError, match="replicasPerEnvironment: no environment named 'trian'"):
        program = load_program(str(EXAMPLE))
        deploy(program, settings(replicasPerEnvironment={"trian": 2}), lock=fake_lock(program.environments))
    assert registered(monitor) == []


def test_promotion_deploys_the_previous_stage_digests_without_building(
    wheels: list[tuple[Any, Path]],
) -> None:
    program = load_program(str(EXAMPLE))
    use_mocks(Mocks())
    dev_refs = deployed(program, settings())
    assert len(wheels) == 2
    wheels.clear()
    monitor = use_mocks(Mocks(previous_refs=dev_refs), stack="staging")
    staging = settings(promoteFrom="dev", namespace="flyte-staging")
    staging_refs = deployed(program, staging, promoted=promoted_image_refs(staging))
    assert staging_refs == dev_refs
    assert monitor.of_type(IMAGE) == {} and wheels == []  # nothing built, no wheel fetched
    reads = [(read.type, read.id) for read in monitor.reads]
    assert reads == [("pulumi:pulumi:StackReference", "organization/flyte-infra/dev")]
    pod = monitor.inputs(DEPLOYMENT)["train-deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == dev_refs["train"]


def test_promotion_refuses_an_image_of_another_spec_or_without_digest() -> None:
    current = "sha-current"
    good = f"127.0.0.1:5000/flyte-infra/environments:{current}@{fake_digest('x')}"
    dev = "stack 'dev'"
    assert promoted_ref({"train": good}, "train", current, dev) == good
    stale = f"127.0.0.1:5000/flyte-infra/environments:sha-old@{fake_digest('x')}"
    with pytest.raises(FlyteInfraError, match="image spec changed since the image in stack 'dev'"):
        promoted_ref({"train": stale}, "train", current, dev)
    with pytest.raises(FlyteInfraError, match="from stack 'dev' is not pinned by digest"):
        promoted_ref({"train": "127.0.0.1:5000/x:sha-current"}, "train", current, dev)
    with pytest.raises(FlyteInfraError, match="stack 'dev' has no image for it"):
        promoted_ref({}, "train", current, dev)


def test_on_a_cluster_the_worker_token_becomes_the_namespace_secret_before_any_worker(
    monitor: RecordingMonitor,
) -> None:
    deployed(load_program(str(EXAMPLE)), settings(), worker_token="s3cret")
    secrets = monitor.inputs("kubernetes:core/v1:Secret")
    assert secrets["worker-token"]["metadata"]["name"] == "flyte-infra-token"
    string_data = secrets["worker-token"]["stringData"]  # a secret value, as Pulumi marks one
    assert string_data["value"] == {"token": "s3cret"} and len(string_data) == 2
    components = monitor.of_type(TYPE_TOKEN)
    assert set(components) == {"data-prep", "train", "pipeline"}
    assert all(any(urn.endswith("::worker-token") for urn in c.dependencies) for c in components.values())


def test_without_a_worker_token_a_cluster_stack_registers_nothing(monitor: RecordingMonitor) -> None:
    with pytest.raises(StackConfigError, match=r"flyte-infra:workerToken: not set"):
        deployed(load_program(str(EXAMPLE)), settings(), worker_token=None)
    assert registered(monitor) == []


def test_in_render_mode_no_token_secret_is_written(monitor: RecordingMonitor, tmp_path: Path) -> None:
    deployed(load_program(str(EXAMPLE)), settings(renderDir=str(tmp_path)), worker_token=None)
    assert "kubernetes:core/v1:Secret" not in registered(monitor)


def test_settings_are_read_from_stack_config(monitor: RecordingMonitor) -> None:
    pulumi.runtime.set_all_config(
        {
            "flyte-infra:module": str(EXAMPLE),
            "flyte-infra:namespace": "flyte-prod",
            "flyte-infra:replicas": "3",
            "flyte-infra:acceleratorLabels": '{"preset": "gke"}',
        }
    )
    try:
        loaded = read_settings(pulumi.Config("flyte-infra"), "prod")
    finally:
        pulumi.runtime.set_all_config({})
    assert loaded.namespace == "flyte-prod" and loaded.replicas == 3
    assert loaded.accelerator_labels.preset == "gke"


def test_the_program_fails_with_the_findings_before_registering_anything(
    monitor: RecordingMonitor, tmp_path: Path
) -> None:
    broken = tmp_path / "broken_envs.py"
    broken.write_text(
        "import flyte_infra as flyte\n"
        "child = flyte.TaskEnvironment('child', packages=['torch>=2.2'])\n"
        "parent = flyte.TaskEnvironment('parent', packages=['torch==2.0'], depends_on=[child])\n"
    )
    pulumi.runtime.set_all_config({"flyte-infra:module": str(broken)})
    try:
        expected = r"(?s)preflight failed with 1 finding.*parent: package 'torch'"
        with pytest.raises(pulumi.RunError, match=expected):
            main()
    finally:
        pulumi.runtime.set_all_config({})
    assert registered(monitor) == []
