"""The layers: every module imports on its own (no import circle), and the core never imports Pulumi."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flyte_infra"
CORE = ("flyte_infra.model", "flyte_infra.deploy", "flyte_infra.artifacts")


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports_first_in_a_fresh_interpreter(module):
    script = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(','.join(sorted(name for name in sys.modules if name.split('.')[0].startswith('pulumi'))))\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment
    )
    assert completed.returncode == 0, completed.stderr  # a circle fails as a partially initialised module
    if module.startswith(CORE):
        assert completed.stdout.strip() == "", f"{module} imports Pulumi"


def test_the_public_api_is_the_package_and_its_errors():
    import flyte_infra
    import flyte_infra.errors

    assert all(hasattr(flyte_infra, name) for name in flyte_infra.__all__)
    assert all(hasattr(flyte_infra.errors, name) for name in flyte_infra.errors.__all__)
    errors = [getattr(flyte_infra.errors, name) for name in flyte_infra.errors.__all__]
    assert all(issubclass(error, flyte_infra.errors.FlyteInfraError) for error in errors)
