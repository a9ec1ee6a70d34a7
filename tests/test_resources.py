from decimal import Decimal

import pytest

from flyte_infra import GPU, InvalidSpecError, Resources
from flyte_infra.model.resources import parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("2Gi", Decimal(2 * 2**30)),
        ("1G", Decimal(10**9)),
        ("1.5", Decimal("1.5")),
        ("1e3", Decimal(1000)),
        (4, Decimal(4)),
    ],
)
def test_quantities_parse_to_their_value(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["lots", "2GB", "1.2.3", "", "m", "Gi2"])
def test_malformed_quantity_is_an_error(bad):
    with pytest.raises(InvalidSpecError, match=r"Resources: cpu: .*not a Kubernetes quantity"):
        Resources(cpu=bad)


def test_zero_and_bool_quantities_are_rejected():
    with pytest.raises(InvalidSpecError, match="greater than zero"):
        Resources(memory="0Mi")
    with pytest.raises(InvalidSpecError, match="expected a quantity"):
        Resources(cpu=True)


def test_request_limit_pair_must_be_ordered():
    assert Resources(cpu=("1", "2")).requests_and_limits() == ({"cpu": "1"}, {"cpu": "2"})
    with pytest.raises(InvalidSpecError, match="memory: request 2Gi is larger than limit 1Gi"):
        Resources(memory=("2Gi", "1Gi"))


@pytest.mark.parametrize(
    ("text", "device", "partition", "count"),
    [
        ("A100:2", "A100", None, 2),
        ("H100", "H100", None, 1),
        ("A100-80GB:8", "A100-80GB", None, 8),
        ("a100-1g.5gb:3", "A100", "1g.5gb", 3),
        ("H100-3g.40gb", "H100", "3g.40gb", 1),
        ("l4", "L4", None, 1),
    ],
)
def test_gpu_grammar(text, device, partition, count):
    gpu = GPU.parse(text)
    assert (gpu.device, gpu.partition, gpu.count) == (device, partition, count)


def test_gpu_resource_names_for_whole_devices_and_mig_slices():
    requests, limits = Resources(gpu="A100:2").requests_and_limits()
    assert requests == limits == {"nvidia.com/gpu": "2"}
    requests, limits = Resources(gpu="A100-1g.5gb:2").requests_and_limits()
    assert requests == limits == {"nvidia.com/mig-1g.5gb": "2"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("A1000:2", "unknown GPU type 'A1000'"),
        ("H100:0", "count must be at least 1"),
        ("A100-9g.1gb", "A100 has no MIG profile '9g.1gb'"),
        ("T4-1g.5gb", "unknown GPU type"),
        ("A100:two", r"does not match TYPE\[:COUNT\]"),
    ],
)
def test_bad_gpu_names_the_problem(bad, message):
    with pytest.raises(InvalidSpecError, match=message):
        Resources(gpu=bad)


def test_unknown_resource_field():
    with pytest.raises(InvalidSpecError, match="Resources: cpus: unknown field"):
        Resources(cpus=1)


def test_summary():
    assert (
        Resources(cpu=("1", "2"), memory="2Gi", gpu="A100:2").summary() == "cpu=1/2, memory=2Gi, gpu=A100:2"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cpu", 1e-10, r"cpu: '1e-10' is out of bounds: cpu must be from 1m to 1024 cores"),
        ("cpu", "0.0001", r"cpu: '0.0001' is out of bounds"),
        ("cpu", "1025", r"cpu: '1025' is out of bounds"),
        ("cpu", ("500m", "1e400"), r"cpu: '1e400' is out of bounds"),
        ("cpu", 1e400, r"cpu: 'inf' is not a Kubernetes quantity"),
        ("memory", "0.5", r"memory: '0.5' is out of bounds: memory must be from 1Mi to 64Ti"),
        ("memory", "1e400", r"memory: '1e400' is out of bounds"),
        ("memory", "65Ti", r"memory: '65Ti' is out of bounds"),
        ("disk", "100k", r"disk: '100k' is out of bounds: disk must be from 1Mi to 1Pi"),
        (
            "gpu",
            "A100:99999999999999999999",
            r"gpu: 'A100:99999999999999999999': GPU count must be at most 64",
        ),
        ("gpu", "H100:65", r"gpu: 'H100:65': GPU count must be at most 64"),
    ],
)
def test_quantities_outside_sane_bounds_are_refused_naming_the_field(field, value, message):
    with pytest.raises(InvalidSpecError, match=message):
        Resources(**{field: value})


def test_quantities_at_their_bounds_are_accepted():
    least = Resources(cpu="1m", memory="1Mi", disk="1Mi", gpu="A100:1")
    most = Resources(cpu="1024", memory="64Ti", disk="1Pi", gpu="A100:64")
    assert least.requests_and_limits()[0] == {
        "cpu": "1m",
        "memory": "1Mi",
        "ephemeral-storage": "1Mi",
        "nvidia.com/gpu": "1",
    }
    assert most.requests_and_limits()[1]["nvidia.com/gpu"] == "64"
