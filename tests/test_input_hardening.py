"""Issue 16, item 3: input that exits, prints, carries credentials or odd names is refused at check time."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
