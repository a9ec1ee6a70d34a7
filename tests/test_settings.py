import pytest
import yaml

from flyte_infra import GPU, FlyteInfraError, InvalidSpecError
from flyte_infra.deploy.settings import AcceleratorLabels, StackSettings, load_stack_settings

from .stacks import ROOT, stack


def test_config_keys_map_to_settings():
    settings = stack(
        registry="registry.example.com:443",
        repository="team/envs",
        replicas=2,
        replicasPerEnvironment={"train": 0},
        clusterDomain="cluster.example",
        baseImages={"python:3.11": "mirror/python:3.11"},
        acceleratorLabels="eks",
        promoteFrom="dev",
        images={"train": "r/x@sha256:0"},
        renderDir="out",
        registryUsername="ignored",
        registryPassword={"secure": "ignored"},
    )
    assert (settings.registry, settings.repository, settings.cluster_domain) == (
        "registry.example.com:443",
        "team/envs",
        "cluster.example",
    )
    assert (settings.replicas_of("train"), settings.replicas_of("pipeline")) == (0, 2)
    assert settings.base_image("python:3.11") == "mirror/python:3.11"
    assert settings.base_image("python:3.12") == "python:3.12"
    assert settings.accelerator_labels == AcceleratorLabels(preset="eks")
    assert (settings.promote_from, settings.images, settings.render_dir) == (
        "dev",
        {"train": "r/x@sha256:0"},
        "out",
    )
    assert set(StackSettings.config_keys()) >= {"module", "replicasPerEnvironment", "acceleratorLabels"}


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"replica": 2}, r"flyte-infra:replica: unknown setting \(known: acceleratorLabels, "),
        ({"namespace": "Flyte"}, r"flyte-infra:namespace: 'Flyte' is not a DNS-1123 label"),
        ({"namespace": "flyte\n"}, r"flyte-infra:namespace: 'flyte\\n' is not a DNS-1123 label"),  # escaped
        ({"registry": "https://ghcr.io"}, r"flyte-infra:registry: 'https://ghcr.io' is not a registry host"),
        ({"repository": "Flyte/envs"}, r"flyte-infra:repository: 'Flyte/envs' is not an image repository"),
        ({"clusterDomain": "cluster..local"}, r"flyte-infra:clusterDomain: 'cluster..local' is not a DNS"),
        ({"port": 80}, r"flyte-infra:port: 80 is not between 1024 and 65535 \(workers run as uid 1000"),
        ({"replicas": -1}, r"flyte-infra:replicas: Input should be greater than or equal to 0"),
        (
            {"replicasPerEnvironment": {"train": -1}},
            r"flyte-infra:replicasPerEnvironment.train: Input should",
        ),
        (
            {"acceleratorLabels": "aks"},
            r"flyte-infra:acceleratorLabels: preset: Input should be 'nvidia-gfd'",
        ),
        (
            {"acceleratorLabels": {"preset": None}},
            r"flyte-infra:acceleratorLabels: without a preset, give the",
        ),
        (
            {"acceleratorLabels": {"key": "gpu type"}},
            r"flyte-infra:acceleratorLabels: key: 'gpu type' is not a Kubernetes label",
        ),
        (
            {"acceleratorLabels": {"values": {"Z100": "z"}}},
            r"flyte-infra:acceleratorLabels: values: unknown GPU type 'Z100'",
        ),
        (
            {"acceleratorLabels": {"values": {"A100": "a 100"}}},
            r"flyte-infra:acceleratorLabels: values: 'a 100' is not a Kubernetes label value",
        ),
    ],
)
def test_invalid_settings_name_the_config_key(values, error):
    with pytest.raises(InvalidSpecError, match=rf"^stack 'dev': {error}"):
        stack(**values)


def test_module_is_required():
    with pytest.raises(InvalidSpecError, match="stack 'prod': flyte-infra:module: Field required"):
        StackSettings.from_config({}, stack="prod")


@pytest.mark.parametrize(
    ("labels", "gpu", "selector"),
    [
        (
            "nvidia-gfd",
            "A100:2",
            {"nvidia.com/gpu.product": ["NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"]},
        ),
        (  # the 80 GB model selects only 80 GB cards
            "nvidia-gfd",
            "A100-80GB",
            {"nvidia.com/gpu.product": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"]},
        ),
        ("gke", "H100", {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}),
        ("eks", "A10G", {"k8s.amazonaws.com/accelerator": "nvidia-a10g"}),
        (  # a MIG slice: GKE labels node pools with their partition size
            "gke",
            "A100-1g.5gb",
            {
                "cloud.google.com/gke-accelerator": "nvidia-tesla-a100",
                "cloud.google.com/gke-gpu-partition-size": "1g.5gb",
            },
        ),
        (
            "nvidia-gfd",
            "A100-1g.5gb",
            {"nvidia.com/gpu.product": ["NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"]},
        ),
        ({"preset": "gke", "key": "pool/gpu"}, "T4", {"pool/gpu": "nvidia-tesla-t4"}),
        (
            {"preset": "gke", "values": {"l40s": "l40s-pool"}},
            "L40S",
            {"cloud.google.com/gke-accelerator": "l40s-pool"},
        ),
        ({"preset": None, "key": "gpu", "values": {"a100-80gb": "big"}}, "A100-80GB:8", {"gpu": "big"}),
    ],
)
def test_node_affinity_per_preset_and_override(labels, gpu, selector):
    affinity = stack(acceleratorLabels=labels).accelerator_labels.node_affinity(GPU.parse(gpu), "train")
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    selected = {e["key"]: e["values"] for e in term["matchExpressions"] if e["operator"] == "In"}
    assert selected == {key: value if isinstance(value, list) else [value] for key, value in selector.items()}


def test_a_list_of_label_values_selects_any_of_them():
    labels = stack(acceleratorLabels={"preset": None, "key": "pool", "values": {"T4": ["a", "b"]}})
    affinity = labels.accelerator_labels.node_affinity(GPU.parse("T4"), "train")
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": "pool", "operator": "In", "values": ["a", "b"]}]
    with pytest.raises(InvalidSpecError, match=r"T4: give a label value or a non-empty list of them"):
        stack(acceleratorLabels={"preset": None, "key": "pool", "values": {"T4": []}})


@pytest.mark.parametrize(
    ("labels", "gpu", "error"),
    [
        (
            "gke",
            "L40S",
            r"^TaskEnvironment 'render-l40s': resources.gpu: L40S has no 'cloud.google.com/gke-acc",
        ),
        (
            "eks",
            "P100",
            r"P100 has no 'k8s.amazonaws.com/accelerator' label value under preset 'eks'; set flyte",
        ),
        (  # EKS has no label value that tells the 80GB A100 from the 40GB one: the user says which
            "eks",
            "A100-80GB",
            r"A100-80GB has no 'k8s.amazonaws.com/accelerator' label .*acceleratorLabels.values.A100-80GB",
        ),
        ({"preset": None, "key": "gpu"}, "T4", r"T4 has no 'gpu' label value in acceleratorLabels.values"),
    ],
)
def test_gpu_without_label_value_is_an_error_naming_the_environment(labels, gpu, error):
    with pytest.raises(InvalidSpecError, match=error):
        stack(acceleratorLabels=labels).accelerator_labels.node_affinity(GPU.parse(gpu), "render-l40s")


def test_replicas_for_unknown_environments_are_an_error():
    settings = stack(replicasPerEnvironment={"trian": 2, "train": 1})
    settings.check_environments(["train", "trian"])
    with pytest.raises(
        InvalidSpecError,
        match=r"flyte-infra:replicasPerEnvironment: no environment named 'trian' \(environments: pipeline",
    ):
        settings.check_environments(["train", "pipeline"])


def test_the_three_stacks():
    dev, staging, prod = (load_stack_settings(ROOT, name) for name in ("dev", "staging", "prod"))
    assert [s.namespace for s in (dev, staging, prod)] == ["flyte-dev", "flyte-staging", "flyte-prod"]
    assert [s.replicas for s in (dev, staging, prod)] == [1, 2, 3]
    assert [s.promote_from for s in (dev, staging, prod)] == [None, "dev", "staging"]
    assert [s.accelerator_labels.preset for s in (dev, staging, prod)] == ["nvidia-gfd", "nvidia-gfd", "gke"]
    # every stage deploys to the devbox's cluster, bounded by readyTimeout; none renders to a directory
    assert {s.kubeconfig for s in (dev, staging, prod)} == {"/var/lib/flyte-infra/cluster/admin.kubeconfig"}
    assert [s.render_dir for s in (dev, staging, prod)] == [None, None, None]
    assert {s.ready_timeout for s in (dev, staging, prod)} == {120}
    assert dev.module == "examples/ml_pipeline.py" and dev.stack == "dev"
    assert dev.base_image("python:3.11-slim-bookworm") == "127.0.0.1:5000/flyte-infra/python:3.11-bookworm"


def test_stack_files_hold_no_plaintext_credentials():
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text())["config"]
        assert not isinstance(config.get("flyte-infra:registryPassword", {"secure": "x"}), str), path


def test_stack_file_reading(tmp_path):
    (tmp_path / "stacks").mkdir()
    path = tmp_path / "stacks" / "Pulumi.qa.yaml"
    path.write_text(
        "config:\n"
        "  flyte-infra:module: m.py\n"
        "  flyte-infra:replicas: 4\n"
        "  flyte-infra:registryPassword:\n    secure: AAABAG==\n"
        "  flyte-infra:images:\n    secure: AAABAG==\n"
        "  kubernetes:context: kind\n"
    )
    settings = load_stack_settings(tmp_path, "qa")
    assert (settings.stack, settings.module, settings.replicas, settings.images) == ("qa", "m.py", 4, {})
    with pytest.raises(FlyteInfraError, match=r"no stack 'nope': .*Pulumi.nope.yaml does not exist"):
        load_stack_settings(tmp_path, "nope")
    path.write_text("config: [module\n")
    with pytest.raises(FlyteInfraError, match=r"^stack 'qa': .*Pulumi.qa.yaml is not valid YAML: "):
        load_stack_settings(tmp_path, "qa")
    path.write_text("encryptionsalt: v1:abc\n")
    with pytest.raises(FlyteInfraError, match=r"^stack 'qa': .*Pulumi.qa.yaml has no `config:` mapping"):
        load_stack_settings(tmp_path, "qa")


def test_a_plaintext_registry_password_in_a_stack_file_is_refused_without_repeating_it(tmp_path):
    from flyte_infra.deploy.settings import load_stack_settings
    from flyte_infra.errors import StackConfigError

    (tmp_path / "stacks").mkdir()
    stack_file = tmp_path / "stacks" / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  flyte-infra:module: m.py\n  flyte-infra:registryPassword: hunter2\n")
    with pytest.raises(StackConfigError, match=r"registryPassword: is in plaintext .*--secret") as caught:
        load_stack_settings(tmp_path, "dev")
    assert "hunter2" not in str(caught.value)
    stack_file.write_text(
        "config:\n  flyte-infra:module: m.py\n  flyte-infra:registryPassword:\n    secure: AAE=\n"
    )
    assert load_stack_settings(tmp_path, "dev").module == "m.py"


def test_base_image_mirrors_are_image_references():
    from flyte_infra.errors import StackConfigError

    with pytest.raises(StackConfigError, match=r"baseImages: 'x\\nRUN echo PWNED' is not an image reference"):
        stack(baseImages={"python:3.11-slim-bookworm": "x\nRUN echo PWNED"})
