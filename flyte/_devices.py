"""Flyte's device constructors (`flyte.GPU("A100", 2)`, `flyte.TPU("V5P", "2x2x1")`, ...) as
flyte-infra's parsed accelerator (`flyte_infra.model.resources.GPU`)."""

from __future__ import annotations

from flyte_infra.errors import UnsupportedFeatureError
from flyte_infra.model.resources import GPU as Device

__all__ = ["AMD_GPU", "GPU", "HABANA_GAUDI", "TPU", "Device", "Neuron"]


def _parsed(text: str, constructor: str) -> Device:
    try:
        return Device.parse(text)
    except ValueError as error:
        raise UnsupportedFeatureError(f"flyte.{constructor}({text!r})", str(error)) from None


def GPU(device: str, quantity: int = 1, partition: str | None = None) -> Device:  # Flyte's name
    """An NVIDIA GPU, `quantity` of them, or a MIG `partition` of one."""
    kind = f"{device}-{partition}" if partition else device
    return _parsed(f"{kind}:{quantity}", "GPU")


def TPU(device: str, partition: str | None = None) -> Device:
    """A single-host GKE TPU slice, e.g. `TPU("V5P", "2x2x1")`."""
    if partition is None:
        raise UnsupportedFeatureError(f"flyte.TPU({device!r})", "give the slice topology, e.g. '2x2x1'")
    try:
        return Device.tpu(device, partition)
    except ValueError as error:
        raise UnsupportedFeatureError(f"flyte.TPU({device!r}, {partition!r})", str(error)) from None


def Neuron(device: str) -> Device:
    """An AWS Neuron device (Inf1, Inf2, Trn1, ...)."""
    return _parsed(f"{device}:1", "Neuron")


def AMD_GPU(device: str) -> Device:
    """An AMD GPU (MI300X, ...)."""
    return _parsed(f"{device}:1", "AMD_GPU")


def HABANA_GAUDI(device: str) -> Device:
    """An Intel Gaudi accelerator."""
    return _parsed(f"{device}:1", "HABANA_GAUDI")
