"""Issue 16, item 3: input that exits, prints, carries credentials or odd names is refused at check time."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]


def cli(*arguments, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "flyte_infra.cli", *arguments], capture_output=True, text=True, cwd=cwd
    )


COMMANDS = [["check"], ["plan", "--json"], ["render", "--stack", "dev", "--project", str(ROOT), "-o", "OUT"]]


@pytest.mark.parametrize("command", COMMANDS, ids=["check", "plan", "render"])
@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("sys.exit(0)", r"it called sys\.exit\(0\) while imported \(at .*exits\.py:4\)"),
        ("sys.exit(3)", r"it called sys\.exit\(3\) while imported"),
        ("sys.exit('bye\\nnow')", r"it called sys\.exit\('bye\\nnow'\) while imported"),
        ("raise SystemExit", r"it called sys\.exit\(None\) while imported"),
        ("raise KeyboardInterrupt", r"interrupted \(KeyboardInterrupt\) while imported \(at .*exits\.py:4\)"),
    ],
)
def test_an_import_that_exits_or_is_interrupted_is_a_one_line_error_with_exit_2(
    tmp_path, command, statement, message
):
    module = tmp_path / "exits.py"
    module.write_text(
        f"import sys\nimport flyte_infra as flyte\nenv = flyte.TaskEnvironment('a')\n{statement}\n"
    )
    arguments = [str(tmp_path / "out") if word == "OUT" else word for word in command]
    completed = cli(arguments[0], str(module), *arguments[1:])
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert len(completed.stderr.splitlines()) == 1, completed.stderr
    assert completed.stderr.startswith("error: cannot load")
    assert re.search(message, completed.stderr)
    assert not (tmp_path / "out").exists()


def test_what_a_module_prints_at_import_never_reaches_plan_json(tmp_path):
    module = tmp_path / "noisy.py"
    module.write_text(
        "import os\nimport flyte_infra as flyte\nprint('NOISE from print')\n"
        "os.system('echo NOISE from a subprocess')\nenv = flyte.TaskEnvironment('a')\n"
    )
    completed = cli("plan", str(module), "--json")
    assert completed.returncode == 0
    assert json.loads(completed.stdout)["order"] == ["a"]
    assert "NOISE from print" in completed.stderr and "NOISE from a subprocess" in completed.stderr


def test_printing_at_import_in_process_goes_to_stderr(tmp_path, capsys):
    from flyte_infra.loader import load_program

    module = tmp_path / "noisy_in_process.py"
    module.write_text("import flyte_infra as flyte\nprint('NOISE')\nenv = flyte.TaskEnvironment('a')\n")
    load_program(str(module))
    print("after")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("after\n", "NOISE\n")


@pytest.mark.parametrize(
    ("package", "shown"),
    [
        (
            "pkg @ https://user:s3cret@host.example/pkg-1.0-py3-none-any.whl",
            "pkg @ https://***@host.example/",
        ),
        ("pkg @ git+https://s3cret@github.com/org/repo.git", "pkg @ git+https://***@github.com/org/repo.git"),
        ("pkg @ git+ssh://git:s3cret@github.com/org/repo.git", "pkg @ git+ssh://***@github.com/"),
        ("pkg[extra] @ https://:s3cret@host/p.whl ; python_version >= '3'", "pkg[extra] @ https://***@host/"),
    ],
)
def test_credentials_in_a_package_url_are_refused_with_a_hint_and_never_printed(tmp_path, package, shown):
    module = tmp_path / "creds.py"
    module.write_text(
        f"import flyte_infra as flyte\nenv = flyte.TaskEnvironment('a', packages=[{package!r}])\n"
    )
    for arguments in (["check", str(module)], ["--debug", "plan", str(module), "--json"]):
        completed = cli(*arguments)
        assert completed.returncode == 1
        assert "s3cret" not in completed.stdout + completed.stderr
        assert shown in completed.stderr
    error = cli("check", str(module)).stderr
    assert len(error.splitlines()) == 1
    assert re.search(
        r"TaskEnvironment 'a': packages: \[0\] .* has credentials in its URL; .*configure the index at build "
        r"time \(PIP_INDEX_URL from a build secret",
        error,
    )


def test_pip_option_lines_are_refused_with_their_credentials_masked():
    from flyte_infra import InvalidSpecError, TaskEnvironment

    with pytest.raises(
        InvalidSpecError, match=r"packages: \[1\] '--index-url https://\*\*\*@idx/simple' has cred"
    ):
        TaskEnvironment("a", packages=["six", "--index-url https://u:s3cret@idx/simple"])
    with pytest.raises(
        InvalidSpecError,
        match=r"\[0\] '--extra-index-url https://idx/simple' is not a PEP 508 .*"
        r"pip options are not accepted, the index is configured at build time",
    ):
        TaskEnvironment("a", packages=["--extra-index-url https://idx/simple"])


def test_a_bare_ssh_login_name_is_not_a_credential():
    from flyte_infra import TaskEnvironment

    env = TaskEnvironment("a", packages=["pkg @ git+ssh://git@github.com/org/repo.git"])
    assert env.packages == ["pkg @ git+ssh://git@github.com/org/repo.git"]


def test_credentials_added_to_packages_after_construction_are_refused_by_preflight():
    from flyte_infra import InvalidSpecError, TaskEnvironment
    from flyte_infra.deploy.preflight import preflight

    env = TaskEnvironment("a", packages=["six"])
    env.packages.append("pkg @ https://user:s3cret@host/p.whl")
    with pytest.raises(
        InvalidSpecError, match=r"packages: \[1\] 'pkg @ https://\*\*\*@host/p.whl' has cred"
    ) as info:
        preflight([env])
    assert "s3cret" not in str(info.value)


def test_the_dotted_module_form_carries_only_the_files_the_program_imports(tmp_path, monkeypatch):
    from flyte_infra.loader import load_program

    package = tmp_path / "dotted_pkg"
    for folder in ("", "sub", "tools", "deploy"):
        (package / folder).mkdir(parents=True, exist_ok=True)
        (package / folder / "__init__.py").write_text("")
    (package / "envs.py").write_text(
        "import flyte_infra as flyte\nfrom .helpers import double\nfrom dotted_pkg.sub import mod\n"
        "from . import tools\nenv = flyte.TaskEnvironment('dotted')\n\n\n@env.task\ndef f(x: int) -> int:\n"
        "    from .late import later\n\n    return double(x) + mod.K + later()\n"
    )
    (package / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (package / "sub" / "mod.py").write_text("K = 1\n")
    (package / "late.py").write_text("def later():\n    return 0\n")
    (package / "unused.py").write_text("raise RuntimeError('never imported')\n")
    (package / "deploy" / "pulumi_program.py").write_text("SECRET = 'deploy-time only'\n")
    (package / "tools" / "unused_tool.py").write_text("")
    monkeypatch.chdir(tmp_path)
    program = load_program("dotted_pkg.envs")
    assert [relative for relative, _ in program.code] == [
        "dotted_pkg/__init__.py",
        "dotted_pkg/envs.py",
        "dotted_pkg/helpers.py",
        "dotted_pkg/late.py",
        "dotted_pkg/sub/__init__.py",
        "dotted_pkg/sub/mod.py",
        "dotted_pkg/tools/__init__.py",
    ]


def test_a_module_of_this_checkout_carries_none_of_its_deploy_time_code(monkeypatch):
    from flyte_infra.loader import load_program

    monkeypatch.chdir(ROOT)
    program = load_program("tests.fixtures.relay")
    assert [relative for relative, _ in program.code] == [
        "tests/__init__.py",
        "tests/fixtures/__init__.py",
        "tests/fixtures/relay.py",
    ]


INJECTIONS = [
    "x\nRUN echo PWNED >pwned #",
    "x\r\nRUN echo PWNED",
    "x\n---\nkind: Pod\nmetadata: {name: pwned}",
    "${EVIL}",
    "--platform=linux/evil",
    "a b",
    "x'; echo PWNED #",
]
FIELDS = {
    "name": lambda value: {"env": {"name": value}},
    "image": lambda value: {"env": {"image": value}},
    "packages": lambda value: {"env": {"packages": [value]}},
    "env_vars key": lambda value: {"env": {"env_vars": {value: "1"}}},
    "env_vars value": lambda value: {"env": {"env_vars": {"MODE": value}}},
    "description": lambda value: {"env": {"description": value}},
    "secret key": lambda value: {"secret": {"key": value}},
    "secret group": lambda value: {"secret": {"key": "token", "group": value}},
    "secret as_env_var": lambda value: {"secret": {"key": "token", "as_env_var": value}},
    "namespace": lambda value: {"stack": {"namespace": value}},
    "registry": lambda value: {"stack": {"registry": value}},
    "repository": lambda value: {"stack": {"repository": value}},
    "baseImages value": lambda value: {"stack": {"baseImages": {"python:3.11-slim-bookworm": value}}},
    "clusterDomain": lambda value: {"stack": {"clusterDomain": value}},
    "module file name": lambda value: {"file": value.replace("/", "_")},  # a file name has no /
    "lock file version": lambda value: {"pin": {"version": value}},
    "lock file name": lambda value: {"pin": {"name": value}},
}


def render_with(tmp_path, env=None, secret=None, stack=None, file="inj_envs", pin=None):
    """Render a one-environment program with the given fields; the Dockerfile's lines and each
    manifest file's documents, or the error's text.

    The program is locked by `fake_lock`, written beside the module and read back; `pin` changes
    the fields of one package in that file first (as a hand-edited lock would)."""
    from dataclasses import replace

    from flyte_infra.artifacts.render import render
    from flyte_infra.deploy.settings import StackSettings
    from flyte_infra.errors import FlyteInfraError, LockError
    from flyte_infra.loader import load_program
    from flyte_infra.packaging.lock import lock_path, read_lock, write_lock

    from .locks import fake_lock

    fields = {"name": "inj", **(env or {})}
    secrets = f"secrets=[flyte.Secret(**{secret!r})], " if secret else ""
    folder = tmp_path / "program"
    folder.mkdir(parents=True, exist_ok=True)
    module = folder / f"{file}.py"
    module.write_text(f"import flyte_infra as flyte\nenv = flyte.TaskEnvironment({secrets}**{fields!r})\n")
    out = tmp_path / "out"
    # a lock file edited to break a line is refused when read (LockError), field by field
    refused = LockError if pin else FlyteInfraError
    try:
        program = load_program(str(module))
        settings = StackSettings.from_config({"module": str(module), **(stack or {})}, stack="dev")
        lock = fake_lock(program.environments)
        if pin:  # edited consistently: a renamed package is renamed in every closure too
            [group] = lock.groups
            edited = replace(group.packages["pyyaml"], **pin)
            packages = {**{k: v for k, v in group.packages.items() if k != "pyyaml"}, edited.name: edited}
            closures = {
                env: tuple(edited.name if name == "pyyaml" else name for name in closure)
                for env, closure in group.closures.items()
            }
            lock = replace(lock, groups=(replace(group, packages=packages, closures=closures),))
        write_lock(lock, lock_path(program.module_file))
        render(program, settings, out, lock=read_lock(lock_path(program.module_file)))
    except refused as error:
        assert not out.exists()
        return str(error)
    dockerfiles = [path.read_text().splitlines() for path in out.glob("images/*/Dockerfile")]
    documents = {
        path.relative_to(out).as_posix(): len(list(yaml.safe_load_all(path.read_text())))
        for path in out.rglob("*.yaml")
    }
    return dockerfiles, documents


@pytest.mark.parametrize("field", FIELDS)
def test_no_input_adds_a_line_to_a_dockerfile_or_a_document_to_a_manifest(tmp_path, field):
    baseline_dockerfiles, baseline_documents = render_with(tmp_path / "baseline")
    [baseline] = baseline_dockerfiles
    for number, injection in enumerate(INJECTIONS):
        outcome = render_with(tmp_path / str(number), **FIELDS[field](injection))
        if isinstance(outcome, str):  # refused: one line naming what was wrong
            assert "\n" not in outcome and "\r" not in outcome, outcome
            continue
        dockerfiles, documents = outcome
        assert [len(lines) for lines in dockerfiles] == [len(baseline)], (field, injection)
        first_words = [line.split(" ", 1)[0] for line in dockerfiles[0]]
        assert first_words == [line.split(" ", 1)[0] for line in baseline], (field, injection)
        assert sorted(documents.values()) == sorted(baseline_documents.values()), (field, injection)
        assert not any("pwned" in name.lower() for name in documents), (field, injection)


def test_a_file_name_that_would_inject_a_dockerfile_line_is_a_one_line_error(tmp_path):
    error = render_with(tmp_path, file="x\nRUN echo PWNED >pwned #")
    assert error == (
        f"cannot load '{tmp_path}/program/x\\nRUN echo PWNED >pwned #.py': "
        "module name 'x\\nRUN echo PWNED >pwned #' "
        "is not a dotted name of ASCII identifiers (letters, digits and '_', not starting with a digit); "
        "rename the file"
    )
    assert "is not a dotted name of ASCII identifiers" in render_with(tmp_path / "space", file="my envs")
