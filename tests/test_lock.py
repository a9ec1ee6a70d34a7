"""The lock: one resolution per connected DAG (uv, for real, against the index), its file, its
layers, and the CLI's `lock`, `--offline` and conflict errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flyte_infra import TaskEnvironment
from flyte_infra.cli import main
from flyte_infra.errors import LockError
from flyte_infra.loader import load_program
from flyte_infra.packaging.lock import Lock, LockedPackage, LockGroup, lock_inputs, read_lock, write_lock
from flyte_infra.packaging.resolve import program_lock, resolve

from .locks import CONFLICTING_DAG


def _package(name: str) -> LockedPackage:
    return LockedPackage(name, "1.0", f"https://index.invalid/{name}-1.0-py3-none-any.whl", name * 4)


def _group(closures: dict[str, set[str]]) -> LockGroup:
    names = {name for closure in closures.values() for name in closure}
    return LockGroup(
        "3.11",
        "sha256:x",
        {name: _package(name) for name in names},
        {k: tuple(sorted(v)) for k, v in closures.items()},
    )


def test_a_chain_stores_every_package_once_most_shared_first():
    group = _group(
        {"data": {"numpy"}, "train": {"numpy", "sklearn"}, "serve": {"numpy", "sklearn", "fastapi"}}
    )
    layers = {
        env: [(layer.users, [p.name for p in layer.packages]) for layer in group.layers(env)]
        for env in group.closures
    }
    assert layers["serve"] == [
        (("data", "serve", "train"), ["numpy"]),
        (("serve", "train"), ["sklearn"]),
        (("serve",), ["fastapi"]),
    ]
    assert layers["data"] == layers["serve"][:1] and layers["train"] == layers["serve"][:2]


def test_in_a_diamond_each_side_layer_is_the_same_layer_in_the_top_image():
    group = _group({"root": {"a"}, "left": {"a", "b"}, "right": {"a", "c"}, "top": {"a", "b", "c", "d"}})
    right = {layer.users: layer.key for layer in group.layers("right")}
    top = {layer.users: layer.key for layer in group.layers("top")}
    assert right[("right", "top")] == top[("right", "top")]
    assert [layer.users for layer in group.layers("top")] == [
        ("left", "right", "root", "top"),
        ("left", "top"),
        ("right", "top"),
        ("top",),
    ]


def test_a_layer_key_changes_with_its_wheels_only():
    group = _group({"a": {"numpy"}, "b": {"numpy"}})
    other = LockGroup(
        "3.11",
        "sha256:y",
        {"numpy": LockedPackage("numpy", "2.0", "https://i/n.whl", "f" * 64)},
        group.closures,
    )
    assert group.layers("a")[0].key == group.layers("b")[0].key != other.layers("a")[0].key


def test_connected_environments_share_one_input_and_an_opt_out_gets_its_own():
    base = TaskEnvironment("base", packages=["numpy"])
    user = TaskEnvironment("user", packages=["numpy", "pandas"], depends_on=[base])
    loner = TaskEnvironment("loner", packages=["numpy"], depends_on=[base], shared_lock=False)
    other = TaskEnvironment("other", packages=["attrs"])
    groups = sorted(item.environments for item in lock_inputs([user, loner, other]))
    assert groups == [("base", "user"), ("loner",), ("other",)]


def test_the_lock_file_round_trips_and_a_changed_requirement_makes_it_stale(tmp_path):
    data = TaskEnvironment("data", packages=["six==1.16.0"])
    lock = resolve(lock_inputs([data]))
    write_lock(lock, tmp_path / "p.lock.toml")
    assert read_lock(tmp_path / "p.lock.toml").groups == lock.groups
    assert lock.closure("data")[0].url.endswith(".whl")
    assert "six" in {package.name for package in lock.closure("data")}
    assert lock.stale(lock_inputs([data])) == []
    changed = TaskEnvironment("data", packages=["six==1.17.0"])
    assert [item.environments for item in lock.stale(lock_inputs([changed]))] == [("data",)]


def test_a_parent_pin_the_child_admits_wins_for_both():
    child = TaskEnvironment("child", packages=["six>=1.10"])
    parent = TaskEnvironment("parent", packages=["six==1.16.0"], depends_on=[child])
    lock = resolve(lock_inputs([parent]))
    assert {env: {p.name: p.version for p in lock.closure(env)}["six"] for env in ("child", "parent")} == {
        "child": "1.16.0",
        "parent": "1.16.0",
    }


def test_a_conflicting_dag_is_one_error_naming_environments_and_packages():
    child = TaskEnvironment("data", packages=["six==1.16.0"])
    parent = TaskEnvironment("train", packages=["six>=1.17"], depends_on=[child])
    with pytest.raises(
        LockError, match=r"'data', 'train'.*six==1.16.0 in 'data', six>=1.17 in 'train'"
    ) as caught:
        resolve(lock_inputs([parent]))
    assert "\n" not in str(caught.value) and caught.value.packages == ["six"]


def test_a_package_without_a_wheel_for_the_platform_is_refused():
    with pytest.raises(
        LockError, match=r"'win'.*pywin32==311.*no wheels.*fix: require a version that has a wheel"
    ):
        resolve(lock_inputs([TaskEnvironment("win", packages=["pywin32==311"])]))


def _module(tmp_path: Path, requirement: str, name: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(f"""
        from flyte_infra import TaskEnvironment
        data = TaskEnvironment("data", packages=["{requirement}"])
        """)
    )
    return path


def test_cli_lock_writes_the_file_and_offline_uses_it_or_refuses(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  flyte-infra:module: pipe_a.py\n")
    module = _module(tmp_path, "six==1.16.0", "pipe_a")
    assert main(["--offline", "check", str(module)]) == 0  # everything else checked, and said
    assert (
        "warning: packages not resolved (offline, and pipe_a.lock.toml is missing" in capsys.readouterr().err
    )
    assert main(["--offline", "build", str(module), "--stack", "dev", "--project", str(tmp_path)]) == 1
    assert main(["lock", "--check", str(module)]) == 1
    assert main(["lock", str(module)]) == 0
    assert (tmp_path / "pipe_a.lock.toml").is_file()
    assert main(["lock", "--check", str(module)]) == 0
    assert main(["--offline", "check", str(module)]) == 0
    assert "package(s) locked in 1 resolution(s)" in capsys.readouterr().out
    (tmp_path / "pipe_b.lock.toml").write_text((tmp_path / "pipe_a.lock.toml").read_text())
    changed = _module(tmp_path, "six==1.17.0", "pipe_b")
    assert (
        main(["--offline", "render", str(changed), "--stack", "dev", "--project", str(tmp_path), "-o", "o"])
        == 1
    )
    assert (
        "'data': packages: the lock (pipe_b.lock.toml) is missing or out of date" in capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()


def test_check_reports_a_conflict_and_writes_no_lock(tmp_path, capsys):
    module = tmp_path / "clash.py"
    module.write_text(CONFLICTING_DAG)
    assert main(["check", str(module)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'data', 'train'" in err and "numpy<1.22 in 'train'" in err
    assert not (tmp_path / "clash.lock.toml").exists()


def test_program_lock_drops_resolutions_of_removed_environments(tmp_path):
    module = _module(tmp_path, "six==1.16.0", "pipe_c")
    stale = TaskEnvironment("gone", packages=["six==1.16.0"])
    write_lock(resolve(lock_inputs([stale])), tmp_path / "pipe_c.lock.toml")
    lock = program_lock(load_program(str(module)))
    assert [group.environments for group in lock.groups] == [("data",)]
    assert [group.environments for group in read_lock(tmp_path / "pipe_c.lock.toml").groups] == [("data",)]


def test_a_hand_edited_lock_file_is_refused_field_by_field(tmp_path):
    group = _group({"data": {"numpy"}})
    path = tmp_path / "edited.lock.toml"
    bad_hash = LockGroup(group.python, group.input_hash, {"numpy": _package("numpy")}, group.closures)
    write_lock(Lock((bad_hash,)), path)  # _package's hash is not 64 hex digits
    with pytest.raises(
        LockError, match=r"edited.lock.toml: numpy: sha256 'numpynumpy.*' is not 64 lowercase hex"
    ):
        read_lock(path)
    good = LockedPackage("numpy", "1.0", "https://i/numpy-1.0-py3-none-any.whl", "a" * 64)
    unpinned = LockGroup(group.python, group.input_hash, {"numpy": good}, {"data": ("numpy", "pandas")})
    write_lock(Lock((unpinned,)), path)
    with pytest.raises(LockError, match=r"environment 'data' lists pandas, which the lock does not pin"):
        read_lock(path)
