"""Issue 17, items 5 to 8: running locally, resources, preflight findings, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flyte
from flyte_infra.artifacts.manifests import environment_manifests
from flyte_infra.deploy.graph import build_graph
from flyte_infra.deploy.preflight import called_tasks, preflight
from flyte_infra.errors import InvalidSpecError, UnsupportedFeatureError
from flyte_infra.loader import load_program
from flyte_infra.packaging.lock import lock_path, write_lock

from ..locks import fake_lock
from ..stacks import stack
from .helpers import MODULES, ROOT, cli, load_source


def _pod(environment):
    objects = environment_manifests(environment, build_graph([environment]), stack(), "img")
    return objects[1]["spec"]["template"]["spec"]


# -- 5. running locally ---------------------------------------------------------------------------
def test_flyte_run_runs_the_task_here_and_returns_a_run_with_its_outputs():
    env = flyte.TaskEnvironment("local_run")

    @env.task
    async def add(x: int, y: int) -> int:
        return x + y

    flyte.init_from_config()  # harmless: no config, no client
    flyte.init()
    run = flyte.run(add, 1, y=2)
    assert run.outputs() == (3,)
    assert run.outputs().named_outputs == {"o0": 3}
    run.wait()
    assert flyte.with_runcontext(mode="local", env_vars={"X": "1"}).run(add, 2, 3).result == 5


def test_a_remote_run_context_is_a_one_line_error_naming_it():
    with pytest.raises(
        UnsupportedFeatureError, match=r"^flyte.with_runcontext\(mode='remote'\) is not supported"
    ):
        flyte.with_runcontext(mode="remote")


def test_flyte_map_group_trace_and_override_have_their_local_meaning():
    env = flyte.TaskEnvironment("mapping")

    @env.task
    def square(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * x

    @flyte.trace
    def double(x: int) -> int:
        return 2 * x

    with flyte.group("squares"):
        results = list(flyte.map(square, [1, -1, 3]))
    assert results[0] == 1 and isinstance(results[1], ValueError) and results[2] == 9
    with pytest.raises(ValueError, match="negative"):
        list(flyte.map(square, [-1], return_exceptions=False))
    assert double(4) == 8
    assert square.override(short_name="sq", retries=1)(3) == 9
    assert flyte.ctx() is None


def test_python_example_py_runs_the_main_block_locally():
    completed = subprocess.run(
        [sys.executable, str(MODULES / "pipeline_flyte2.py")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        cwd=MODULES,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "([11, 21],)"


# -- 6. resources ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gpu", "resource", "count"),
    [
        ("A100 80G:8", "nvidia.com/gpu", "8"),
        ("A100_80G", "nvidia.com/gpu", "1"),
        (2, "nvidia.com/gpu", "2"),
        ("MI300X:1", "amd.com/gpu", "1"),
        ("Trn1:1", "aws.amazon.com/neuron", "1"),
        ("Gaudi1:1", "habana.ai/gaudi", "1"),
    ],
)
def test_gpu_accepts_flytes_spellings_and_maps_accelerators_to_device_plugin_resources(gpu, resource, count):
    pod = _pod(flyte.TaskEnvironment("accel", resources=flyte.Resources(gpu=gpu)))
    assert pod["containers"][0]["resources"]["limits"][resource] == count
    assert pod["tolerations"][0]["key"] == resource


def test_the_80gb_a100_is_selected_by_its_own_node_labels():
    pod = _pod(flyte.TaskEnvironment("a100_80", resources=flyte.Resources(gpu="A100 80G:8")))
    values = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert "NVIDIA-A100-SXM4-80GB" in values["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]


def test_a_gke_tpu_requests_its_chips_and_selects_its_slice_by_node_labels():
    pod = _pod(flyte.TaskEnvironment("tpu_env", resources=flyte.Resources(gpu=flyte.TPU("V5P", "2x2x1"))))
    assert pod["containers"][0]["resources"]["limits"]["google.com/tpu"] == "4"
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5p-slice",
        "cloud.google.com/gke-tpu-topology": "2x2x1",
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: flyte.TPU("V5P", "4x4x4"), "multi-host TPU slices are not supported"),
        (lambda: flyte.Resources(gpu="RTX PRO 6000:1"), "does not match TYPE"),
        (lambda: flyte.Resources(gpu="A10:1"), "unknown GPU type 'A10'"),
    ],
)
def test_accelerators_we_cannot_schedule_are_one_line_errors(make, message):
    with pytest.raises((UnsupportedFeatureError, InvalidSpecError), match=message):
        make()


def test_shm_is_a_memory_backed_empty_dir_at_dev_shm():
    pod = _pod(flyte.TaskEnvironment("shm_env", resources=flyte.Resources(shm="2Gi")))
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]
    auto = _pod(flyte.TaskEnvironment("shm_auto", resources=flyte.Resources(shm="auto")))
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in auto["volumes"]


# -- 7. preflight ---------------------------------------------------------------------------------
def test_a_task_passed_as_a_value_is_not_a_call_but_a_mapped_or_awaited_one_is(tmp_path):
    program = load_source(
        tmp_path,
        """
        import functools
        import flyte
        other = flyte.TaskEnvironment("other_env")
        main = flyte.TaskEnvironment("main_env")

        @other.task
        def leaf(x: int) -> int:
            return x

        @main.task
        def passes() -> str:
            return repr(leaf)

        @main.task
        def maps(xs: list[int]) -> list[int]:
            return list(flyte.map(leaf, xs))

        @main.task
        def partial(x: int) -> int:
            return functools.partial(leaf)(x)

        @main.task
        async def awaits(x: int) -> int:
            return await leaf.aio(x)
        """,
    )
    main = program.environment("main_env")
    assert called_tasks(main.tasks["passes"]) == []
    for name in ("maps", "partial", "awaits"):
        assert [task.name for task in called_tasks(main.tasks[name])] == ["leaf"], name
    subjects = [finding.subject for finding in preflight([main]).errors]
    assert "task 'passes'" not in subjects
    assert "task 'maps'" in subjects


def test_missing_packages_along_a_depends_on_chain_are_reported_for_every_environment_in_one_pass():
    leaf = flyte.TaskEnvironment("leaf_env", packages=["numpy==2.0.1"])
    middle = flyte.TaskEnvironment("middle_env", packages=["pyyaml==6.0.2"], depends_on=[leaf])
    top = flyte.TaskEnvironment("top_env", depends_on=[middle])
    missing = sorted((f.environment, f.subject) for f in preflight([top]).errors)
    assert missing == [
        ("middle_env", "package 'numpy'"),
        ("top_env", "package 'numpy'"),
        ("top_env", "package 'pyyaml'"),
    ]


# -- 8. errors ------------------------------------------------------------------------------------
FAILING = """
import flyte
env = flyte.TaskEnvironment("failing_env")

@env.task
def explode(x: int) -> int:
    raise KeyError(f"no such key {x}")
"""


def test_run_prints_a_tasks_own_exception_as_one_line(tmp_path):
    (tmp_path / "failing_task.py").write_text(FAILING)
    completed = cli("run", str(tmp_path / "failing_task.py"), "explode", "--arg", "x=3")
    assert completed.returncode == 1
    assert completed.stderr == "error: task 'explode' failed: KeyError: 'no such key 3'\n"


def test_run_verbose_prints_the_tasks_traceback_too(tmp_path):
    (tmp_path / "failing_task_v.py").write_text(FAILING)
    completed = cli("run", str(tmp_path / "failing_task_v.py"), "explode", "--arg", "x=3", "--verbose")
    assert completed.returncode == 1
    assert completed.stderr.startswith("Traceback")
    assert completed.stderr.endswith("error: task 'explode' failed: KeyError: 'no such key 3'\n")


def test_plan_piped_into_a_reader_that_stops_ends_quietly(tmp_path):
    module = tmp_path / "many_envs.py"  # a plan far larger than a pipe's buffer
    module.write_text(
        "import flyte_infra as flyte\n"
        "for i in range(1500):\n"
        "    globals()[f'env_{i}'] = flyte.TaskEnvironment(f'e-{i}', packages=['numpy==2.0.1'])\n"
    )
    # plan resolves the packages unless the stored lock is up to date: store one and forbid resolving,
    # so no package index is needed (1500 unconnected environments would be 1500 uv resolutions)
    program = load_program(str(module))
    write_lock(fake_lock(program.environments), lock_path(program.module_file))
    command = f"{sys.executable} -m flyte_infra.cli --offline plan {module} | head -1"
    completed = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert completed.stdout.startswith("deploy order:")
    assert completed.stderr == ""


def test_every_flyte2_module_here_loads_through_the_loader():
    for path in sorted(MODULES.glob("*.py")):
        assert load_program(str(path)).environments


def test_flyte_io_files_and_dirs_are_local_paths_that_travel_as_json(tmp_path):
    from flyte.io import Dir, File

    (tmp_path / "a.txt").write_text("hello")
    file = File.from_local_sync(tmp_path / "a.txt")
    with file.open_sync("r") as handle:
        assert handle.read() == "hello"
    assert File.model_validate_json(file.model_dump_json()) == file
    assert [f.name for f in Dir.from_local_sync(tmp_path).walk_sync()] == ["a.txt"]
    assert file.download_sync(tmp_path / "b.txt") == str(tmp_path / "b.txt")
