"""Compute resources of an environment: Kubernetes quantities and the GPU grammar `TYPE[:COUNT]`."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator

from .validation import SpecModel

__all__ = ["GPU", "GPU_TYPES", "Resources", "parse_quantity"]

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}


def parse_quantity(value: str | int | float) -> Decimal:
    """Value of a Kubernetes quantity ("500m" -> 0.5, "2Gi" -> 2147483648); ValueError if malformed."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"'{value}' is not a Kubernetes quantity (examples: 500m, 2, 1.5, 512Mi, 2Gi, 1G)")
    suffix = match["suffix"] or ""
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"'{value}' is not a Kubernetes quantity") from exc
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _DECIMAL[suffix]


def _quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a quantity such as '500m' or '2Gi', got {value!r}")
    if parse_quantity(value) <= 0:
        raise ValueError(f"'{value}' must be greater than zero")
    return str(value).strip()


Quantity = Annotated[str, BeforeValidator(_quantity)]
"""A positive Kubernetes quantity, kept in the user's spelling."""


class _Device:
    """A GPU model: its MIG profiles and, under each labelling preset, every node-label value its
    nodes may carry (one per product string: SXM and PCIe cards of one model differ there)."""

    def __init__(self, labels: dict[str, tuple[str, ...]], mig_profiles: tuple[str, ...] = ()) -> None:
        self.labels = labels
        self.mig_profiles = mig_profiles


_A100_40_MIG = ("1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb")
_A100_80_MIG = ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb")
_H100_MIG = ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb")


def _device(
    gfd: tuple[str, ...], gke: str | None = None, eks: str | None = None, mig: tuple[str, ...] = ()
) -> _Device:
    labels = {"nvidia-gfd": gfd}
    labels.update({preset: (value,) for preset, value in (("gke", gke), ("eks", eks)) if value})
    return _Device(labels, mig)


GPU_TYPES: dict[str, _Device] = {
    "T4": _device(("Tesla-T4",), "nvidia-tesla-t4", "nvidia-tesla-t4"),
    "V100": _device(
        ("Tesla-V100-SXM2-16GB", "Tesla-V100-SXM2-32GB", "Tesla-V100-PCIE-16GB", "Tesla-V100-PCIE-32GB"),
        "nvidia-tesla-v100",
        "nvidia-tesla-v100",
    ),
    "P100": _device(
        ("Tesla-P100-PCIE-16GB", "Tesla-P100-PCIE-12GB", "Tesla-P100-SXM2-16GB"), "nvidia-tesla-p100"
    ),
    "A10G": _device(("NVIDIA-A10G",), eks="nvidia-a10g"),
    "L4": _device(("NVIDIA-L4",), "nvidia-l4", "nvidia-l4"),
    "L40S": _device(("NVIDIA-L40S",), eks="nvidia-l40s"),
    "A100": _device(
        ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"),
        "nvidia-tesla-a100",
        "nvidia-tesla-a100",
        _A100_40_MIG,
    ),
    # eks: no label value tells the 80 GB A100 apart
    "A100-80GB": _device(
        ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"), "nvidia-a100-80gb", mig=_A100_80_MIG
    ),
    "H100": _device(
        ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "NVIDIA-H100-NVL"),
        "nvidia-h100-80gb",
        "nvidia-h100",
        _H100_MIG,
    ),
    "H200": _device(("NVIDIA-H200", "NVIDIA-H200-NVL"), "nvidia-h200-141gb", "nvidia-h200"),
    "B200": _device(("NVIDIA-B200",), "nvidia-b200", "nvidia-b200"),
}
"""Known GPU models. A MIG slice is written `MODEL-PROFILE`, e.g. `A100-1g.5gb` or `H100-3g.40gb`."""

_GPU = re.compile(r"^(?P<type>[A-Za-z0-9][A-Za-z0-9.\-]*?)(?::(?P<count>\d+))?$")

_FLYTE_SPELLINGS = {"A100 80G": "A100-80GB", "A100_80G": "A100-80GB", "A100-80G": "A100-80GB", "L40S": "L40S"}
"""Flyte's spellings of GPU models that GPU_TYPES names otherwise (upper-cased keys)."""


class _Accelerator:
    """A non-NVIDIA accelerator family: its device plugin's resource and the models Flyte names."""

    def __init__(self, kind: str, resource: str, models: tuple[str, ...]) -> None:
        self.kind, self.resource, self.models = kind, resource, models


ACCELERATORS = (
    _Accelerator(
        "amd",
        "amd.com/gpu",
        ("MI100", "MI210", "MI250", "MI250X", "MI300A", "MI300X", "MI325X", "MI350X", "MI355X"),
    ),
    _Accelerator("neuron", "aws.amazon.com/neuron", ("Inf1", "Inf2", "Trn1", "Trn1n", "Trn2", "Trn2u")),
    _Accelerator("gaudi", "habana.ai/gaudi", ("Gaudi1",)),
    _Accelerator("tpu", "google.com/tpu", ("V5E", "V5P", "V6E")),
)
"""Accelerators other than NVIDIA GPUs: scheduled by their device plugin's extended resource (only
nodes that advertise it can run the pod); TPUs also by GKE's TPU node labels."""
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
_TPU_LABEL_VALUES = {"V5E": "tpu-v5-lite-podslice", "V5P": "tpu-v5p-slice", "V6E": "tpu-v6e-slice"}
_TPU_CHIPS_PER_HOST = 8


def _accelerator(kind: str) -> _Accelerator | None:
    return next((family for family in ACCELERATORS if family.kind == kind), None)


def _accelerator_model(text: str) -> tuple[str, str] | None:
    """(kind, model) of a non-NVIDIA model name in any case, else None."""
    for family in ACCELERATORS:
        for model in family.models:
            if model.upper() == text.upper():
                return family.kind, model
    return None


class GPU(BaseModel):
    """A parsed GPU request; usually written as text, `TYPE[:COUNT]`, and parsed by `Resources`.

    Args:
        device: A key of GPU_TYPES, e.g. `A100`.
        partition: A MIG profile of the device, e.g. `1g.5gb`, or None for whole GPUs.
        count: How many.

    Example:
        ```python
        GPU.parse("A100-1g.5gb:2") == GPU(device="A100", partition="1g.5gb", count=2)
        ```
    """

    model_config = ConfigDict(frozen=True)

    device: str | None
    """None: any NVIDIA GPU (`gpu=2`), scheduled by `nvidia.com/gpu` alone."""
    partition: str | None = None
    count: int = 1
    kind: str = "nvidia"
    """`nvidia`, or a non-NVIDIA family of ACCELERATORS: `amd`, `neuron`, `gaudi`, `tpu`."""

    @classmethod
    def parse(cls, text: str) -> GPU:
        """Parse `TYPE[:COUNT]`: "A100:2", "H100", "A100-80GB:8", "A100-1g.5gb:2", and Flyte's
        spellings "A100 80G:8", "A100_80G", "MI300X:1", "Trn1:1", "Gaudi1:1"."""
        stripped = text.strip()
        for spelling, name in _FLYTE_SPELLINGS.items():
            if stripped.upper() == spelling or stripped.upper().startswith(spelling + ":"):
                stripped = name + stripped[len(spelling) :]
        match = _GPU.match(stripped)
        if not match:
            raise ValueError(f"'{text}' does not match TYPE[:COUNT] (examples: A100:2, H100, A100-1g.5gb)")
        count = int(match["count"]) if match["count"] is not None else 1
        if count < 1:
            raise ValueError(f"'{text}': GPU count must be at least 1")
        if count > _MAX_GPUS:
            raise ValueError(f"'{text:.40}': GPU count must be at most {_MAX_GPUS}")
        other = _accelerator_model(match["type"])
        if other is not None:
            if other[0] == "tpu":
                raise ValueError(f"'{text}': give a TPU as flyte.TPU('{other[1]}', 'TOPOLOGY')")
            return cls(device=other[1], count=count, kind=other[0])
        device, partition = _split_type(match["type"])
        return cls(device=device, partition=partition, count=count)

    @classmethod
    def tpu(cls, device: str, topology: str) -> GPU:
        """A single-host GKE TPU slice, e.g. `GPU.tpu("V5P", "2x2x1")` (4 chips)."""
        model = _accelerator_model(device)
        if model is None or model[0] != "tpu":
            raise ValueError(f"unknown TPU type '{device}' (known: {', '.join(_TPU_LABEL_VALUES)})")
        try:
            dimensions = [int(part) for part in topology.lower().split("x")]
        except ValueError:
            raise ValueError(f"TPU topology '{topology}' is not like 2x2x1") from None
        chips = 1
        for dimension in dimensions:
            chips *= dimension
        if chips < 1 or chips > _TPU_CHIPS_PER_HOST:
            raise ValueError(
                f"TPU topology '{topology}' has {chips} chips: multi-host TPU slices are not supported "
                f"(at most {_TPU_CHIPS_PER_HOST} chips, one node)"
            )
        return cls(device=model[1], partition=topology.lower(), count=chips, kind="tpu")

    @property
    def resource_name(self) -> str:
        """The extended resource the device plugin advertises (`nvidia.com/gpu`, a MIG slice,
        `amd.com/gpu`, `aws.amazon.com/neuron`, `habana.ai/gaudi`, `google.com/tpu`)."""
        family = _accelerator(self.kind)
        if family is not None:
            return family.resource
        return f"nvidia.com/mig-{self.partition}" if self.partition else "nvidia.com/gpu"

    @property
    def node_selector(self) -> dict[str, str]:
        """Node labels a non-NVIDIA accelerator is selected by, beyond its resource (TPUs: GKE's)."""
        if self.kind == "tpu" and self.device is not None:
            return {
                TPU_ACCELERATOR_LABEL: _TPU_LABEL_VALUES[self.device],
                TPU_TOPOLOGY_LABEL: str(self.partition),
            }
        return {}

    def label_values(self, preset: str) -> tuple[str, ...]:
        """Every node-label value of this model under a labelling preset; empty if it has none."""
        if self.device is None or self.kind != "nvidia":
            return ()
        return GPU_TYPES[self.device].labels.get(preset, ())

    def __str__(self) -> str:
        if self.device is None:
            return f"gpu:{self.count}"
        if self.kind == "tpu":
            return f"TPU-{self.device}-{self.partition}:{self.count}"
        kind = f"{self.device}-{self.partition}" if self.partition else self.device
        return f"{kind}:{self.count}"


def _split_type(kind: str) -> tuple[str, str | None]:
    by_upper = {name.upper(): name for name in GPU_TYPES}
    if kind.upper() in by_upper:
        return by_upper[kind.upper()], None
    for name in sorted(GPU_TYPES, key=len, reverse=True):
        prefix = name.upper() + "-"
        if kind.upper().startswith(prefix):
            profile = kind[len(prefix) :].lower()
            profiles = GPU_TYPES[name].mig_profiles
            if profile in profiles:
                return name, profile
            if profiles:
                raise ValueError(
                    f"'{kind}': {name} has no MIG profile '{profile}' (known: {', '.join(profiles)})"
                )
    raise ValueError(f"unknown GPU type '{kind}' (known: {', '.join(GPU_TYPES)}; MIG: e.g. A100-1g.5gb)")


def _gpu(value: Any) -> Any:
    if isinstance(value, GPU) or value is None:
        return value
    if isinstance(value, str):
        return GPU.parse(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"gpu={value}: GPU count must be at least 1")
        return GPU(device=None, count=value)
    raise ValueError(f"expected a GPU string such as 'A100:2' or a count, got {value!r}")


def _shm(value: Any) -> Any:
    if value is None or value == "auto":
        return value
    return _quantity(value)


def _quantity_or_range(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected (request, limit), got {value!r}")
        request, limit = _quantity(value[0]), _quantity(value[1])
        if parse_quantity(request) > parse_quantity(limit):
            raise ValueError(f"request {request} is larger than limit {limit}")
        return (request, limit)
    return None if value is None else _quantity(value)


_KUBERNETES_QUANTITIES = (("cpu", "cpu"), ("memory", "memory"), ("ephemeral-storage", "disk"))
"""A container's resource name -> the field of `Resources` that sets it."""

QuantityOrRange = Annotated[str | tuple[str, str] | None, BeforeValidator(_quantity_or_range)]

_BOUNDS = {
    "cpu": (Decimal("0.001"), Decimal(1024), "1m", "1024 cores"),
    "memory": (Decimal(2**20), Decimal(64 * 2**40), "1Mi", "64Ti"),
    "disk": (Decimal(2**20), Decimal(2**50), "1Mi", "1Pi"),
}
"""Field -> (least, most, both as text): below 1m Kubernetes rounds a CPU request up (or it is a typo
such as `1e-10`); a memory of `"0.5"` is half a byte; above the maxima no node exists (`1e400`)."""


def _within_bounds(field: str, value: str | tuple[str, str] | None) -> None:
    least, most, least_text, most_text = _BOUNDS[field]
    for quantity in value if isinstance(value, tuple) else () if value is None else (value,):
        amount = parse_quantity(quantity)
        if not least <= amount <= most:
            raise ValueError(
                f"'{quantity:.40}' is out of bounds: {field} must be from {least_text} to {most_text}"
            )


_MAX_GPUS = 64
"""The most GPUs one worker may request: more than any node has (8 to 16 today)."""


class Resources(SpecModel):
    """Requests and limits of one environment's worker, validated at construction.

    Args:
        cpu: A Kubernetes quantity (`"500m"`, `2`) for request == limit, or a `(request, limit)` pair.
        memory: As `cpu`, e.g. `"2Gi"` or `("1Gi", "4Gi")`.
        gpu: `TYPE[:COUNT]`, e.g. `"A100:2"`, `"H100"`, `"A100 80G:8"`, a MIG slice `"A100-1g.5gb:2"`,
            a non-NVIDIA model (`"MI300X:1"`, `"Trn1:1"`, `"Gaudi1:1"`), or a count of any NVIDIA GPU.
        disk: Ephemeral storage, a quantity.
        shm: Size of /dev/shm (a memory-backed emptyDir), or `"auto"`.

    Example:
        ```python
        Resources(cpu=("1", "2"), memory="8Gi", gpu="A100:1")
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: QuantityOrRange = None
    memory: QuantityOrRange = None
    gpu: Annotated[GPU | None, BeforeValidator(_gpu)] = None
    disk: Quantity | None = None
    shm: Annotated[str | None, BeforeValidator(_shm)] = None
    """Shared memory: a memory-backed emptyDir at /dev/shm of this size, or `"auto"` (no size limit)."""

    @field_validator("cpu", "memory", "disk")
    @classmethod
    def _check_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        _within_bounds(info.field_name or "", value)
        return value

    def summary(self) -> str:
        """Short text such as `cpu=1/2, memory=2Gi, gpu=A100:2` (request/limit where they differ)."""
        parts = []
        for key, value in (("cpu", self.cpu), ("memory", self.memory), ("disk", self.disk)):
            if value is not None:
                parts.append(f"{key}={'/'.join(value) if isinstance(value, tuple) else value}")
        if self.gpu is not None:
            parts.append(f"gpu={self.gpu}")
        if self.shm is not None:
            parts.append(f"shm={self.shm}")
        return ", ".join(parts)

    def requests_and_limits(self, gpu_resource: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """Kubernetes `requests` and `limits` maps (GPU requests equal limits, as Kubernetes requires).

        The GPU is requested as `gpu_resource` when given (a cluster's device plugin may advertise
        MIG slices under another name), else as `GPU.resource_name`.
        """
        requests: dict[str, str] = {}
        limits: dict[str, str] = {}
        fields = self.__dict__
        for key, field in _KUBERNETES_QUANTITIES:
            value = fields[field]
            if value is None:
                continue
            if isinstance(value, tuple):
                requests[key], limits[key] = value
            else:
                requests[key] = limits[key] = value
        gpu = fields["gpu"]
        if gpu is not None:
            resource = gpu_resource or gpu.resource_name
            requests[resource] = limits[resource] = str(gpu.count)
        return requests, limits
