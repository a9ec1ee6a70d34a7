import importlib.machinery
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flyte_infra import LoadError
from flyte_infra.cli import main
from flyte_infra.loader import load_program

EXAMPLE = str(Path(__file__).parents[1] / "examples" / "ml_pipeline.py")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_load_program_collects_environments_and_sources():
    program = load_program(EXAMPLE)
    assert program.module_name == "ml_pipeline"
    assert [env.name for env in program.environments] == ["data-prep", "train", "pipeline"]
    assert [relative for relative, _ in program.code] == ["ml_pipeline.py"]
    with pytest.raises(LoadError, match="has no environment 'nope' \\(it has: data-prep, train, pipeline\\)"):
        program.environment("nope")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import not_a_module_xyz\n", r"ModuleNotFoundError: No module named 'not_a_module_xyz' \(at .*:1\)"),
        ("def broken(:\n", "SyntaxError"),
        ("x = 1\n", "defines no TaskEnvironment"),
        (
            "import flyte_infra as f\nok = f.TaskEnvironment('ok')\n"
            "bad = f.TaskEnvironment('x', resources=f.Resources(cpu='lots'))\n",
            r"Resources: cpu: 'lots' is not a Kubernetes quantity .* \(at .*:3\)",
        ),
    ],
)
def test_load_errors_are_one_line(tmp_path, source, message):
    path = write(tmp_path, f"mod_{abs(hash(source))}.py", source)
    with pytest.raises(LoadError, match=message) as info:
        load_program(path)
    assert "\n" not in str(info.value)


def test_check_passes_on_the_example(capsys):
    assert main(["check", EXAMPLE]) == 0
    assert "ok: 3 environment(s)" in capsys.readouterr().out


def test_check_exits_1_with_findings(tmp_path, capsys):
    path = write(
        tmp_path,
        "bad_pkgs.py",
        "import flyte_infra as f\nc = f.TaskEnvironment('c', packages=['torch>=2.2'])\n"
        "p = f.TaskEnvironment('p', packages=['torch==2.0'], depends_on=[c])\n",
    )
    assert main(["check", path]) == 1
    err = capsys.readouterr().err
    assert "1 error(s)" in err and "error: p: package 'torch'" in err


def test_plan_json_has_order_waves_and_compute(capsys):
    assert main(["plan", "--json", EXAMPLE]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["waves"] == [["data-prep", "train"], ["pipeline"]]
    assert plan["environments"]["train"]["limits"] == {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "2"}


def test_graph_writes_dot_and_svg(tmp_path):
    assert main(["graph", EXAMPLE, "-o", str(tmp_path / "g.dot")]) == 0
    dot = (tmp_path / "g.dot").read_text()
    assert '"pipeline" -> "train";' in dot and "cluster_wave_2" in dot
    if subprocess.run(["which", "dot"], capture_output=True).returncode == 0:
        assert main(["graph", EXAMPLE, "-o", str(tmp_path / "g.svg")]) == 0
        assert (tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")


def test_cli_prints_one_line_not_a_traceback(tmp_path):
    path = write(tmp_path, "broken_import.py", "import not_a_module_xyz\n")
    completed = subprocess.run(
        [sys.executable, "-m", "flyte_infra.cli", "check", path], capture_output=True, text=True
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("error: cannot load") and "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"--images .*refs\.json: No such file or directory"),
        ("{bad", r"--images .*refs\.json: not JSON"),
        ('["a"]', r"--images .*refs\.json: expected a JSON object of environment -> image ref"),
    ],
)
def test_render_reports_a_bad_images_file_in_one_line(tmp_path, capsys, content, message):
    refs = tmp_path / "refs.json"
    if content is not None:
        refs.write_text(content)
    root = str(Path(EXAMPLE).parents[1])
    arguments = ["render", EXAMPLE, "--stack", "staging", "--project", root, "--images", str(refs)]
    assert main([*arguments, "-o", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and re.search(message, error)
    assert not (tmp_path / "out").exists()


def test_the_code_an_image_carries_follows_imports_by_location_not_by_name(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "nspkg").mkdir(parents=True)  # a namespace package: no __init__.py
    (project / "nspkg" / "tools.py").write_text("K = 1\n")
    (project / "colorsys.py").write_text("def zscore(x):\n    return x\n")  # shadows the stdlib's
    (tmp_path / "src" / "mylib").mkdir(parents=True)  # a src/ layout package, on sys.path
    (tmp_path / "src" / "mylib" / "__init__.py").write_text("import json\nVALUE = 2\n")
    (project / "lazy_helper.py").write_text("X = 3\n")
    (project / "ns_envs.py").write_text(
        "import flyte_infra as flyte\nfrom nspkg import tools\nfrom colorsys import zscore\nimport mylib\n"
        "env = flyte.TaskEnvironment('ns')\n\n\n@env.task\ndef f() -> int:\n"
        "    import lazy_helper\n\n    return tools.K + zscore(1) + mylib.VALUE + lazy_helper.X\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)  # the stdlib's, if imported before
    program = load_program(str(project / "ns_envs.py"))
    expected = ["colorsys.py", "lazy_helper.py", "mylib/__init__.py", "ns_envs.py", "nspkg/tools.py"]
    assert [relative for relative, _ in program.code] == expected
    assert dict(program.code)["mylib/__init__.py"] == (tmp_path / "src" / "mylib" / "__init__.py").resolve()
    import lazy_helper  # noqa: F401  # imported by the process now: the file set must not change

    assert [relative for relative, _ in load_program(str(project / "ns_envs.py")).code] == expected


def test_the_code_an_image_carries_skips_installed_and_hidden_code_and_follows_symlinks(
    tmp_path, monkeypatch
):
    project = tmp_path / "proj"
    real = tmp_path / "real_utils"
    real.mkdir()
    (real / "__init__.py").write_text("K = 1\n")
    project.mkdir()
    (project / "utils").symlink_to(real)  # a symlinked package
    (project / "ext").mkdir()
    (project / "ext" / "__init__.py").write_text("")
    (project / "ext" / ".cache").mkdir()  # hidden: never shipped
    (project / "ext" / ".cache" / "junk.py").write_text("")
    (project / "ext" / "venv").mkdir()  # a virtual environment inside a package: never shipped
    (project / "ext" / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (project / "ext" / "venv" / "site.py").write_text("")
    extension = "fastmath" + importlib.machinery.EXTENSION_SUFFIXES[0]
    (project / extension).write_bytes(b"\0ELF")  # a compiled module beside the program
    vendor = tmp_path / "vendor"  # pip install --target vendor: installed, even outside site-packages
    (vendor / "vendored").mkdir(parents=True)
    (vendor / "vendored" / "__init__.py").write_text("")
    (vendor / "vendored-1.0.dist-info").mkdir()
    (vendor / "vendored-1.0.dist-info" / "METADATA").write_text("Name: vendored\nVersion: 1.0\n")
    # the distribution also claims `shared`, as sloppy ones claim `tests` or `utils`: the project's own
    # shared.py is still the project's
    (vendor / "vendored-1.0.dist-info" / "top_level.txt").write_text("vendored\nshared\n")
    (project / "shared.py").write_text("S = 1\n")
    (vendor / "halfgone-1.0.dist-info").mkdir()  # an interrupted uninstall: no usable metadata
    (vendor / "halfgone-1.0.dist-info" / "RECORD").write_text("halfgone/__init__.py,,\n")
    (project / "sym_envs.egg-info").mkdir()  # `pip install -e .` left setuptools metadata in the tree
    (project / "sym_envs.egg-info" / "PKG-INFO").write_text("Name: sym-envs\nVersion: 0\n")
    (project / "sym_envs.egg-info" / "top_level.txt").write_text("versions\n")
    (project / "versions" / "v2").mkdir(parents=True)
    (project / "versions" / "__init__.py").write_text("from . import v2\n")
    (project / "versions" / "v2" / "__init__.py").write_text("")
    (project / "versions" / "latest").symlink_to("v2")  # sorts first; v2 must still ship as itself
    (project / "sym_envs.py").write_text(
        "import flyte_infra as flyte\nimport utils\nimport ext\nimport vendored\n"
        "import shared\nimport versions\n"
        "env = flyte.TaskEnvironment('sym')\n\n\n@env.task\ndef f() -> int:\n"
        "    import fastmath  # imported lazily: the module loads without it\n\n    return utils.K\n"
    )
    monkeypatch.syspath_prepend(str(vendor))
    program = load_program(str(project / "sym_envs.py"))
    assert [relative for relative, _ in program.code] == [
        "ext/__init__.py",
        extension,
        "shared.py",
        "sym_envs.py",
        "utils/__init__.py",
        "versions/__init__.py",
        "versions/v2/__init__.py",
    ]
