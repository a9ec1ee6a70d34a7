"""Stack settings: what differs between dev, staging and prod (namespace, registry, replicas, labels)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..errors import InvalidSpecError, StackConfigError
from ..model.resources import GPU, GPU_TYPES
from ..model.validation import DNS1123_LABEL_PATTERN, DNSLabel, SpecModel, image_reference

__all__ = ["PRESET_KEYS", "AcceleratorLabels", "StackSettings", "load_stack_settings"]

PRESET_KEYS = {
    "nvidia-gfd": "nvidia.com/gpu.product",
    "gke": "cloud.google.com/gke-accelerator",
    "eks": "k8s.amazonaws.com/accelerator",
}
"""Node labels naming the GPU model: NVIDIA GPU feature discovery, GKE and EKS."""

GKE_PARTITION_LABEL = "cloud.google.com/gke-gpu-partition-size"
"""The node label GKE sets to the MIG partition size of a node pool's GPUs."""

_CONFIG_PREFIX = "flyte-infra:"
_SECRET_KEYS = ("registryUsername", "registryPassword", "workerToken")
"""Read by the Pulumi adapter as secrets; never part of the settings."""

_DNS_LABEL = DNS1123_LABEL_PATTERN
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^(?:{_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^(?:{_LABEL_NAME})?$")
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")
_HOST_PORT = re.compile(
    r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_FORMATS: dict[str, tuple[re.Pattern[str], str, str]] = {
    "registry": (_HOST_PORT, "a registry host[:port]", "127.0.0.1:5000 or ghcr.io"),
    "repository": (_REPOSITORY, "an image repository path", "flyte-infra/environments"),
    "cluster_domain": (_DNS_SUBDOMAIN, "a DNS domain", "cluster.local"),
}
"""Settings that are text of a fixed form: the pattern, what it is, an example."""


def _matching(pattern: re.Pattern[str], value: str, what: str, example: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"'{value}' is not {what} (e.g. {example})")
    return value


class AcceleratorLabels(SpecModel):
    """How GPU nodes are selected: a label key and the value for each GPU model.

    A preset supplies both (`nvidia-gfd`, `gke`, `eks`); `key` overrides the key and `values` the value
    of individual models (keys of `flyte_infra.resources.GPU_TYPES`, any case). Without a preset,
    `key` is required and only the models in `values` can be scheduled.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: Literal["nvidia-gfd", "gke", "eks"] | None = "nvidia-gfd"
    key: str | None = None
    values: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _matching(_LABEL_KEY, value, "a Kubernetes label key", "example.com/gpu-model")

    @field_validator("values", mode="before")
    @classmethod
    def _check_values(cls, value: Any) -> Any:
        """Each model's label value, or a list of them (any of which selects a node)."""
        if not isinstance(value, Mapping):
            return value
        by_upper = {name.upper(): name for name in GPU_TYPES}
        checked = {}
        for device, labels in value.items():
            if str(device).upper() not in by_upper:
                raise ValueError(f"unknown GPU type '{device}' (known: {', '.join(GPU_TYPES)})")
            listed = [labels] if isinstance(labels, str) else labels
            if not isinstance(listed, list | tuple) or not listed:
                raise ValueError(f"{device}: give a label value or a non-empty list of them")
            checked[by_upper[str(device).upper()]] = tuple(
                _matching(_LABEL_VALUE, str(label), "a Kubernetes label value", "nvidia-tesla-a100")
                for label in listed
            )
        return checked

    @model_validator(mode="after")
    def _key_known(self) -> AcceleratorLabels:
        if self.preset is None and not self.key:
            raise ValueError("without a preset, give the label key")
        return self

    @property
    def label_key(self) -> str:
        """The node label that names the GPU model."""
        return self.key or PRESET_KEYS[self.preset or "nvidia-gfd"]

    def node_affinity(self, gpu: GPU, environment: str) -> dict[str, Any]:
        """A required node affinity selecting nodes of `gpu`'s model by any of its label values (an
        A100 is an SXM4 or a PCIe card); InvalidSpecError naming `environment` when neither
        `values` nor the preset knows the model."""
        values = self.values.get(gpu.device or "") or (gpu.label_values(self.preset) if self.preset else ())
        if not values:
            under = f"under preset '{self.preset}'" if self.preset else "in acceleratorLabels.values"
            raise InvalidSpecError(
                f"TaskEnvironment '{environment}'",
                "resources.gpu",
                f"{gpu.device} has no '{self.label_key}' label value {under}; "
                f"set flyte-infra:acceleratorLabels.values.{gpu.device}",
            )
        expressions = [{"key": self.label_key, "operator": "In", "values": list(values)}]
        if gpu.partition and self.preset == "gke":  # GKE partitions a node's GPUs: select the size
            expressions.append({"key": GKE_PARTITION_LABEL, "operator": "In", "values": [gpu.partition]})
        term = {"matchExpressions": expressions}
        return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}

    def resource_name(self, gpu: GPU) -> str:
        """The extended resource to request `gpu` as: GKE advertises each MIG partition of a node as
        a plain `nvidia.com/gpu`; NVIDIA's device plugin (mixed strategy) as `nvidia.com/mig-<profile>`."""
        return "nvidia.com/gpu" if self.preset == "gke" else gpu.resource_name


NonNegative = Annotated[int, Field(ge=0)]


class StackSettings(SpecModel):
    """One stack's settings, read from `stacks/Pulumi.<stack>.yaml` (`flyte-infra:*` keys).

    Images are pushed as `registry/repository:<spec tag>`, so environments with identical specs share
    one image. `images` (env -> ref by digest) or `promote_from` (the stack whose digests to deploy)
    make a stack deploy images built elsewhere instead of building them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stack: str = "dev"
    module: str
    namespace: DNSLabel = "flyte"
    registry: str = "127.0.0.1:5000"
    repository: str = "flyte-infra/environments"
    replicas: NonNegative = 1
    replicas_per_environment: dict[str, NonNegative] = Field(default_factory=dict)
    port: int = 8080
    cluster_domain: str = "cluster.local"
    base_images: dict[str, str] = Field(default_factory=dict)
    accelerator_labels: AcceleratorLabels = Field(default_factory=AcceleratorLabels)
    promote_from: str | None = None
    images: dict[str, str] = Field(default_factory=dict)
    render_dir: str | None = None
    kubeconfig: str | None = None
    ready_timeout: int = Field(default=300, ge=10, le=3600)
    client_namespaces: list[DNSLabel] = Field(default_factory=list)
    """Namespaces besides the stack's own whose pods labelled `flyte-infra/role: client` may call the
    entry environments (those nothing depends on); none by default."""

    @classmethod
    def _spec_error(cls, data: dict[str, Any], field: str, problem: str) -> InvalidSpecError:
        return StackConfigError(str(data.get("stack", "?")), field, problem)

    @field_validator(*_FORMATS)
    @classmethod
    def _formatted(cls, value: str, info: ValidationInfo) -> str:
        pattern, what, example = _FORMATS[info.field_name or ""]
        return _matching(pattern, value, what, example)

    @field_validator("base_images")
    @classmethod
    def _base_images(cls, value: dict[str, str]) -> dict[str, str]:
        for image, mirror in value.items():  # both reach a Dockerfile's FROM
            image_reference(image)
            image_reference(mirror)
        return value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1024 <= value <= 65535:
            raise ValueError(
                f"{value} is not between 1024 and 65535 (workers run as uid 1000 without capabilities, "
                "so they cannot bind a privileged port)"
            )
        return value

    @field_validator("accelerator_labels", mode="before")
    @classmethod
    def _accelerator_labels(cls, value: Any) -> Any:
        """A preset name or a mapping; built here so that its errors read `acceleratorLabels: key: ...`."""
        if isinstance(value, str):
            value = {"preset": value}
        if not isinstance(value, Mapping):
            return value
        try:
            return AcceleratorLabels(**{str(key): item for key, item in value.items()})
        except InvalidSpecError as error:
            field = "" if error.field == "value" else f"{error.field}: "
            raise ValueError(field + error.problem) from error

    @field_validator("kubeconfig")
    @classmethod
    def _one_target(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("render_dir"):
            raise ValueError(
                "renderDir and kubeconfig exclude each other: render YAML to a directory, or deploy to "
                "the cluster the kubeconfig names"
            )
        return value

    def replicas_of(self, environment: str) -> int:
        """Replicas of `environment`'s Deployment: its override, else `replicas`."""
        return self.replicas_per_environment.get(environment, self.replicas)

    def base_image(self, image: str) -> str:
        """The reference to build FROM: the mirror of `image` if the stack maps it."""
        return self.base_images.get(image, image)

    def check_environments(self, names: Iterable[str]) -> None:
        """InvalidSpecError if `replicasPerEnvironment` names an environment not among `names` (a typo
        there would otherwise be ignored silently)."""
        known = set(names)
        unknown = sorted(set(self.replicas_per_environment) - known)
        if unknown:
            raise StackConfigError(
                self.stack,
                f"{_CONFIG_PREFIX}replicasPerEnvironment",
                f"no environment named {', '.join(map(repr, unknown))} "
                f"(environments: {', '.join(sorted(known))})",
            )

    @classmethod
    def config_keys(cls) -> list[str]:
        """The Pulumi config keys (camelCase, without `flyte-infra:`) the settings read."""
        return [_camel(name) for name in cls.model_fields if name != "stack"]

    @classmethod
    def from_config(cls, values: Mapping[str, Any], stack: str) -> StackSettings:
        """Settings from Pulumi-style camelCase keys without the `flyte-infra:` prefix.

        `acceleratorLabels` is a preset name or `{preset, key, values}`. Registry credentials are
        skipped (the adapter reads them as secrets); any other unknown key is an error, and errors name
        the config key, e.g. `flyte-infra:replicasPerEnvironment.train`.
        """
        known = {_camel(name): name for name in cls.model_fields if name != "stack"}
        fields: dict[str, Any] = {"stack": stack}
        for key, value in values.items():
            if key in _SECRET_KEYS:
                continue
            if key not in known:
                raise StackConfigError(
                    stack,
                    f"{_CONFIG_PREFIX}{key}",
                    f"unknown setting (known: {', '.join(sorted(known))})",
                )
            fields[known[key]] = value
        try:
            return cls(**fields)
        except InvalidSpecError as error:
            head, dot, rest = error.field.partition(".")
            raise StackConfigError(
                stack, f"{_CONFIG_PREFIX}{_camel(head)}{dot}{rest}", error.problem
            ) from error


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def load_stack_settings(project_dir: Path, stack: str) -> StackSettings:
    """Read `stacks/Pulumi.<stack>.yaml` under `project_dir`.

    Only `flyte-infra:*` keys are read; secure values (`{secure: ...}`) are skipped, as are other
    namespaces' keys (e.g. `kubernetes:context`).
    """
    path = project_dir / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise StackConfigError(
            stack, None, f"{path} does not exist", message=f"no stack '{stack}': {path} does not exist"
        )
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StackConfigError(stack, None, f"{path} is not valid YAML: {_one_line(error)}") from error
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise StackConfigError(stack, None, f"{path} has no `config:` mapping")
    password = config.get(f"{_CONFIG_PREFIX}registryPassword")
    if password is not None and not (isinstance(password, dict) and "secure" in password):
        raise StackConfigError(  # the value itself is never repeated
            stack,
            f"{_CONFIG_PREFIX}registryPassword",
            "is in plaintext in the stack file; set it encrypted with "
            f"`pulumi config set --secret {_CONFIG_PREFIX}registryPassword` (stack {stack})",
        )
    values = {
        key.removeprefix(_CONFIG_PREFIX): value
        for key, value in config.items()
        if isinstance(key, str)
        and key.startswith(_CONFIG_PREFIX)
        and not (isinstance(value, dict) and "secure" in value)
    }
    return StackSettings.from_config(values, stack)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
