import enum

import pytest

from flyte_infra.deploy.packages import (
    DEFAULT_PYTHON,
    coverage_problems,
    image_python,
    package_set,
)


def problems(parent, child):
    return [(p.severity, p.package) for p in coverage_problems(tuple(parent), tuple(child))]


@pytest.mark.parametrize(
    ("parent", "child"),
    [
        (["torch==2.3.0"], ["torch>=2.2"]),
        (["Scikit_Learn==1.5"], ["scikit-learn"]),  # PEP 503 names
        (["numpy>=1.26,<2"], ["numpy>=1.24"]),
        (["ray[tune,serve]==2.9"], ["ray[tune]"]),
        (["pandas~=2.1.0"], ["pandas>=2.1,<2.2"]),
        (["pandas==2.1.*"], ["pandas<2.2"]),
        (["torch"], ["torch; sys_platform == 'win32'"]),  # marker does not apply in a Linux image
        ([], ["colorama; os_name == 'nt'"]),
        (["attrs>=23", "attrs<24"], ["attrs>=23,<25"]),  # repeated names are merged
        (["requests[SOCKS]==2.31"], ["requests[socks]"]),  # extras compare normalised (PEP 685)
        (["apache-airflow[cncf_kubernetes]==2.9"], ["apache-airflow[cncf-kubernetes]==2.9"]),
    ],
)
def test_covered(parent, child):
    assert problems(parent, child) == []


@pytest.mark.parametrize(
    ("parent", "child", "severity", "package"),
    [
        ([], ["torch"], "error", "torch"),
        (["torch==2.1.0"], ["torch>=2.2"], "error", "torch"),
        (["pandas<2"], ["pandas>=2.1"], "error", "pandas"),
        (["ray[tune]"], ["ray[serve]"], "error", "ray"),
        (["numpy>=1.20"], ["numpy>=1.24"], "warning", "numpy"),
        (["pkg @ https://example.invalid/a.whl"], ["pkg @ https://example.invalid/b.whl"], "error", "pkg"),
        (["torch; sys_platform == 'win32'"], ["torch"], "error", "torch"),  # parent's marker excludes Linux
        (["requests"], ["Requests[socks]==2.31"], "error", "requests"),
        (["attrs>=23", "numpy", "Attrs<24"], ["attrs>=24"], "error", "attrs"),  # merged: >=23,<24
    ],
)
def test_not_covered(parent, child, severity, package):
    assert (severity, package) in problems(parent, child)


def test_problem_text_names_the_pin_and_the_specifier():
    (problem,) = coverage_problems(("torch==2.1.0",), ("torch>=2.2",))
    assert "pinned to ==2.1.0" in problem.problem and ">=2.2" in problem.problem


def test_a_package_list_that_is_not_a_list_of_strings_is_a_clear_error():
    class Line(str):
        pass

    assert coverage_problems((Line("numpy==2.0"),), ("numpy>=1",)) == []  # a str subclass is a string
    with pytest.raises(ValueError, match=r"\[1\] 3 is not a PEP 508 requirement: not a string"):
        coverage_problems(("numpy", 3), ())
    with pytest.raises(ValueError, match="expected a list of PEP 508 requirements, got NoneType"):
        coverage_problems(None, ())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image", "python"),
    [
        ("python:3.12-slim", "3.12"),
        ("docker.io/library/python:3.10.14-bookworm", "3.10.14"),
        ("127.0.0.1:5000/flyte-infra/python:3.13", "3.13"),
        ("python:3.12@sha256:" + "0" * 64, "3.12"),
        ("python@sha256:" + "0" * 64, DEFAULT_PYTHON),  # no tag: the version is not named
        ("python:slim", DEFAULT_PYTHON),
        ("nvcr.io/nvidia/pytorch:24.01-py3", DEFAULT_PYTHON),
        ("mypython:3.12", DEFAULT_PYTHON),
    ],
)
def test_image_python_is_the_version_an_image_reference_names(image, python):
    assert image_python(image) == python


def test_markers_are_evaluated_for_the_image_s_python_not_the_deploying_one():
    child = ["tomli>=1; python_version < '3.11'", "exceptiongroup; python_full_version < '3.11.0'"]
    assert coverage_problems([], child, python="3.11") == []
    assert [p.package for p in coverage_problems([], child, python="3.10")] == ["tomli", "exceptiongroup"]
    newer = ["typing-extensions; python_version >= '3.13'"]
    assert coverage_problems([], newer, python="3.12") == []
    assert [p.package for p in coverage_problems([], newer, python="3.13")] == ["typing-extensions"]


def test_the_same_lines_in_another_order_keep_their_order():
    lines = ["numpy==2.0", "pandas>=2"]
    first, reordered = package_set(lines), package_set(lines[::-1])
    assert list(first.lines) == ["numpy", "pandas"] and list(reordered.lines) == ["pandas", "numpy"]
    assert reordered.requirements == first.requirements


def test_a_line_is_its_text_even_where_its_class_prints_otherwise():
    class Line(str, enum.Enum):  # noqa: UP042  # not StrEnum: its str() would be the text
        numpy = "numpy==2.0"

    assert str(Line.numpy) != "numpy==2.0"
    assert package_set([Line.numpy]).lines == {"numpy": "numpy==2.0"}
    assert package_set(["numpy==2.0"]).lines == {"numpy": "numpy==2.0"}
