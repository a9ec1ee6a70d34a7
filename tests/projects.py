"""A copy of this Pulumi project (program, stacks, examples) for engine tests, with its own state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
PASSPHRASE = "flyte-infra-tests"


def copy_project(target: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copy the project into `target`, point the engine at a file:// backend there, and cd into it."""
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, target / name)
    for name in ("stacks", "examples"):
        shutil.copytree(ROOT / name, target / name)
    monkeypatch.setenv("PULUMI_BACKEND_URL", (target / "state").as_uri())
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    monkeypatch.chdir(target)
    return target


def set_config(project: Path, stage: str, **values: object) -> None:
    """Set (or, with None, remove) `flyte-infra:<key>` values in a stack file of the copy."""
    path = project / "stacks" / f"Pulumi.{stage}.yaml"
    document = yaml.safe_load(path.read_text())
    for key, value in values.items():
        if value is None:
            document["config"].pop(f"flyte-infra:{key}", None)
        else:
            document["config"][f"flyte-infra:{key}"] = value
    path.write_text(yaml.safe_dump(document))
