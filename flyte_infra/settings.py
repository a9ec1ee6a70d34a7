"""Stack settings: what differs between dev, staging and prod (namespace, registry, replicas, labels)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, field_validator, model_validator

from ._spec import SpecModel, dns1123_label
from .errors import FlyteInfraError, InvalidSpecError
from .resources import GPU

__all__ = ["PRESET_KEYS", "AcceleratorLabels", "StackSettings", "load_stack_settings"]

PRESET_KEYS = {
    "nvidia-gfd": "nvidia.com/gpu.product",
    "gke": "cloud.google.com/gke-accelerator",
    "eks": "k8s.amazonaws.com/accelerator",
}
"""Node labels naming the GPU model: NVIDIA GPU feature discovery, GKE and EKS."""

_CONFIG_PREFIX = "flyte-infra:"


class AcceleratorLabels(SpecModel):
    """How GPU nodes are selected: a label key and the value for each GPU model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: Literal["nvidia-gfd", "gke", "eks"] | None = "nvidia-gfd"
    key: str | None = None
    values: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_known(self) -> AcceleratorLabels:
        if self.preset is None and not self.key:
            raise ValueError("without a preset, give the label key")
        return self

    @property
    def label_key(self) -> str:
        return self.key or PRESET_KEYS[self.preset or "nvidia-gfd"]

    def node_selector(self, gpu: GPU, environment: str) -> dict[str, str]:
        """`{label key: value}` selecting nodes with this GPU model."""
        value = self.values.get(gpu.device) or (gpu.label_value(self.preset) if self.preset else None)
        if value is None:
            raise InvalidSpecError(
                f"TaskEnvironment '{environment}'",
                "resources.gpu",
                f"{gpu.device} has no '{self.label_key}' label value under preset '{self.preset}'; "
                f"set flyte-infra:acceleratorLabels.values.{gpu.device}",
            )
        return {self.label_key: value}


class StackSettings(SpecModel):
    """One stack's settings, read from `stacks/Pulumi.<stack>.yaml` (`flyte-infra:*` keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stack: str = "dev"
    module: str
    namespace: str = "flyte"
    registry: str = "127.0.0.1:5000"
    repository: str = "flyte-infra/environments"
    replicas: int = Field(default=1, ge=0)
    replicas_per_environment: dict[str, int] = Field(default_factory=dict)
    port: int = Field(default=8080, ge=1, le=65535)
    cluster_domain: str = "cluster.local"
    base_images: dict[str, str] = Field(default_factory=dict)
    accelerator_labels: AcceleratorLabels = Field(default_factory=AcceleratorLabels)
    promote_from: str | None = None
    images: dict[str, str] = Field(default_factory=dict)
    render_dir: str | None = None

    @classmethod
    def _spec_owner(cls, data: dict[str, Any]) -> str:
        return f"stack '{data.get('stack', '?')}'"

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return dns1123_label(value)

    @field_validator("accelerator_labels", mode="before")
    @classmethod
    def _preset_shorthand(cls, value: Any) -> Any:
        return {"preset": value} if isinstance(value, str) else value

    def replicas_of(self, environment: str) -> int:
        return self.replicas_per_environment.get(environment, self.replicas)

    def base_image(self, image: str) -> str:
        """The reference to build FROM: the mirror of `image` if the stack maps it."""
        return self.base_images.get(image, image)

    @classmethod
    def config_keys(cls) -> list[str]:
        """The Pulumi config keys (camelCase, without `flyte-infra:`) the settings read."""
        return [_camel(name) for name in cls.model_fields if name != "stack"]

    @classmethod
    def from_config(cls, values: Mapping[str, Any], stack: str) -> StackSettings:
        """Settings from Pulumi-style camelCase keys (secrets such as registryPassword are skipped)."""
        known = {_camel(name): name for name in cls.model_fields}
        fields: dict[str, Any] = {"stack": stack}
        for key, value in values.items():
            if key in ("registryUsername", "registryPassword"):
                continue
            if key not in known or key == "stack":
                raise InvalidSpecError(
                    f"stack '{stack}'",
                    f"flyte-infra:{key}",
                    f"unknown setting (known: {', '.join(sorted(set(known) - {'stack'}))})",
                )
            fields[known[key]] = value
        return cls(**fields)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def load_stack_settings(project_dir: Path, stack: str) -> StackSettings:
    """Read `stacks/Pulumi.<stack>.yaml` under `project_dir` (secure values are ignored)."""
    path = project_dir / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise FlyteInfraError(f"no stack '{stack}': {path} does not exist")
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    values = {
        key.removeprefix(_CONFIG_PREFIX): value
        for key, value in config.items()
        if key.startswith(_CONFIG_PREFIX) and not (isinstance(value, dict) and "secure" in value)
    }
    return StackSettings.from_config(values, stack)
