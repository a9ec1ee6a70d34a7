import shutil

import pytest

from flyte_infra import FlyteInfraError
from flyte_infra.build import build_images

from .stacks import example, stack


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI to point at a missing daemon")
def test_build_without_a_daemon_says_how_to_start_one(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    program, _ = example()
    with pytest.raises(FlyteInfraError, match=r"no Docker daemon answers .*`scripts/services.sh up`"):
        build_images(program, stack(), tmp_path / "contexts")
    assert not (tmp_path / "contexts").exists()  # nothing written, nothing built


def test_build_without_the_docker_cli_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    program, _ = example()
    with pytest.raises(FlyteInfraError, match="the docker CLI is not installed"):
        build_images(program, stack(), tmp_path / "contexts")
