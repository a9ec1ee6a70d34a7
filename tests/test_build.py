import shutil

import pytest

from flyte_infra.docker.build import _failure_log, build_images
from flyte_infra.errors import ImageBuildError

from .stacks import example, stack


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI to point at a missing daemon")
def test_build_without_a_daemon_says_how_to_start_one(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    program, _ = example()
    with pytest.raises(ImageBuildError, match=r"no Docker daemon answers .*`scripts/services.sh up`"):
        build_images(program, stack(), tmp_path / "contexts")
    assert not (tmp_path / "contexts").exists()  # nothing written, nothing built


def test_build_without_the_docker_cli_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    program, _ = example()
    with pytest.raises(ImageBuildError, match="the docker CLI is not installed"):
        build_images(program, stack(), tmp_path / "contexts")


def test_a_failed_build_is_summed_up_by_its_error_lines_without_colour_codes():
    stdout = "Step 4/9 : RUN pip install x\n\x1b[91mERROR: Cannot install x==1 and y==2\x1b[0m\nnoise\n"
    link = "\x1b]8;;https://pip.pypa.io\x1b\\ERROR: ResolutionImpossible\x1b]8;;\x1b\\"
    stderr = f"{link}\n\nThe command returned 1\n"
    assert _failure_log(stdout, stderr) == [
        "ERROR: Cannot install x==1 and y==2",
        "ERROR: ResolutionImpossible",
        "The command returned 1",
    ]
