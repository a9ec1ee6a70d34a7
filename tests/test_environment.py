import asyncio
import functools
import threading

import pydantic
import pytest

import flyte_infra as flyte
from flyte_infra import InvalidSpecError, Resources, Secret, TaskEnvironment


def test_constructor_takes_every_field():
    base = TaskEnvironment("base")
    env = TaskEnvironment(
        name="train",
        image="python:3.11",
        packages=["torch>=2.2", "pandas"],
        resources=Resources(cpu="2", memory="4Gi", gpu="A100:2"),
        depends_on=[base],
        env_vars={"EPOCHS": "3"},
        secrets=["hf_token", Secret(key="wandb", as_env_var="WANDB_API_KEY")],
        description="fits the model",
    )
    assert env.depends_on == [base]
    assert env.secrets[0].env_var == "HF_TOKEN" and env.secrets[0].secret_name == "hf-token"
    assert env.secrets[1].env_var == "WANDB_API_KEY"
    assert env.defined_at.startswith(__file__)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Train_GPU"}, r"TaskEnvironment 'Train_GPU': name: .*not an environment name"),
        ({"name": "x" * 254}, "not an environment name .*at most 253 characters"),
        ({"name": "train__gpu"}, r"'train__gpu' is not an environment name .*single '_' or '-'"),
        (
            {"name": "t", "packages": ["torch>>2"]},
            r"TaskEnvironment 't': packages: \[0\] 'torch>>2' is not a PEP 508",
        ),
        (
            {"name": "t", "packages": ["c==1.0", "numpy", "c>=2"]},
            r"'t': packages: \[2\] 'c>=2' contradicts 'c==1.0': no version satisfies them together",
        ),
        (
            {"name": "t", "packages": ["c>=1", "c<2", "c>=2.1"]},
            r"packages: \[2\] 'c>=2.1' contradicts 'c>=1' and 'c<2'",
        ),
        (
            {"name": "t", "packages": ["c @ https://a.example/c.whl", "c[x] @ https://b.example/c.whl"]},
            r"packages: \[1\] 'c\[x\] @ https://b.example/c.whl' contradicts .*: they name different URLs",
        ),
        ({"name": "t", "image": "has space"}, "image: 'has space' is not an image reference"),
        ({"name": "t", "env_vars": {"1BAD": "x"}}, "env_vars: '1BAD' is not an environment variable name"),
        ({"name": "t", "depends_on": ["other"]}, r"depends_on: \[0\] expected a TaskEnvironment, got str"),
        ({"name": "t", "cpu": 1}, "TaskEnvironment 't': cpu: unknown field"),
    ],
)
def test_invalid_fields_name_environment_and_field(fields, message):
    with pytest.raises(InvalidSpecError, match=message):
        TaskEnvironment(**fields)


def test_add_dependency_dedupes_and_rejects_self():
    a, b, c = TaskEnvironment("a"), TaskEnvironment("b"), TaskEnvironment("c")
    c.add_dependency(a, b, a)
    c.add_dependency(b)
    assert [env.name for env in c.depends_on] == ["a", "b"]
    with pytest.raises(InvalidSpecError, match="'c': depends_on: an environment cannot depend on itself"):
        c.add_dependency(c)
    with pytest.raises(InvalidSpecError, match="expected a TaskEnvironment"):
        c.add_dependency("a")  # type: ignore[arg-type]


def test_clone_with_changes_fields_and_drops_tasks():
    base = TaskEnvironment("base")
    env = TaskEnvironment("train", packages=["torch"], depends_on=[base])

    @env.task
    def fit() -> int:
        return 1

    clone = env.clone_with("train-big", resources=Resources(gpu="H100:8"))
    assert clone.name == "train-big" and clone.packages == ["torch"] and clone.depends_on == [base]
    assert clone.resources.gpu is not None and clone.resources.gpu.count == 8
    assert clone.tasks == {} and "fit" in env.tasks
    clone.add_dependency(TaskEnvironment("extra"))
    assert len(env.depends_on) == 1  # the clone's list is its own


def test_clone_with_unknown_keyword_is_a_clear_error():
    with pytest.raises(
        InvalidSpecError, match=r"'train': clone_with: unknown field\(s\) nam \(allowed: name,"
    ):
        TaskEnvironment("train").clone_with("train-2", nam="x")  # type: ignore[call-arg]


def test_clone_with_validates_the_new_values():
    with pytest.raises(InvalidSpecError, match="TaskEnvironment 'Bad': name"):
        TaskEnvironment("train").clone_with(name="Bad")


def test_sync_and_async_tasks_run_in_process():
    env = TaskEnvironment("calc")

    @env.task
    def double(x: int) -> int:
        return 2 * x

    @env.task()
    async def add_doubles(x: int, y: int) -> int:
        return double(x) + double(y)

    assert double(4) == 8 and not double.is_async
    assert add_doubles.is_async and asyncio.run(add_doubles(1, 2)) == 6
    assert add_doubles.qualified_name == "calc.add_doubles"
    assert set(env.tasks) == {"double", "add_doubles"}


def test_task_names_are_unique_per_environment():
    env = TaskEnvironment("calc")

    @env.task
    def step() -> None: ...

    with pytest.raises(InvalidSpecError, match="a task named 'step' is already registered"):
        env.task(step.func)


def test_public_api_is_small():
    assert {"TaskEnvironment", "Resources", "Secret", "Task"} <= set(flyte.__all__)


def test_a_task_must_be_a_named_function_with_named_parameters():
    env = TaskEnvironment("calc")

    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(
        InvalidSpecError, match=r"^TaskEnvironment 'calc': task: functools\.partial.* not a named"
    ):
        env.task(functools.partial(add, 1))

    def positional(x: int, /) -> int:
        return x

    def spread(*xs: int) -> int:
        return sum(xs)

    def options(**flags: bool) -> int:
        return len(flags)

    for function, kind in (
        (positional, "positional-only"),
        (spread, "variadic positional"),
        (options, "variadic keyword"),
    ):
        with pytest.raises(
            InvalidSpecError, match=rf"'calc': task '{function.__name__}': parameter '.*' is {kind}"
        ):
            env.task(function)
    assert env.tasks == {}


def test_hints_that_cannot_travel_as_json_are_one_line_errors():
    from flyte_infra.errors import TaskArgumentError
    from flyte_infra.runtime.codec import encode_arguments

    env = TaskEnvironment("hints")

    @env.task
    def later(d: "NotDefinedAnywhere") -> int:  # type: ignore[name-defined]  # noqa: F821
        return 1

    @env.task
    def weird(x: int) -> "threading.Lock":  # type: ignore[valid-type]
        return threading.Lock()

    class Login(pydantic.BaseModel):
        user: str
        password: pydantic.SecretStr

    @env.task
    def log_in(login: Login) -> bool:
        return bool(login.password)

    with pytest.raises(
        TaskArgumentError, match=r"^task 'hints.log_in': parameter 'login': .* holds a secret"
    ):
        encode_arguments(log_in, (Login(user="u", password="p"),), {})  # JSON would send '**********'
    with pytest.raises(
        TaskArgumentError, match=r"^task 'hints.later': its type hints cannot be resolved: NameError"
    ):
        encode_arguments(later, (1,), {})
    with pytest.raises(
        TaskArgumentError, match=r"^task 'hints.weird': result: type hint .* cannot be sent as JSON"
    ) as info:
        encode_arguments(weird, (1,), {})
    assert "\n" not in str(info.value)


def test_tasks_are_read_only_outside_the_decorator():
    env = TaskEnvironment("ro")

    @env.task
    def step() -> int:
        return 1

    assert list(env.tasks) == ["step"]
    with pytest.raises(TypeError):
        env.tasks["other"] = step  # type: ignore[index]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"image": "${EVIL}"}, r"image: '\$\{EVIL\}' is not an image reference"),
        ({"image": "--platform=linux/arm64"}, "image: '--platform=linux/arm64' is not an image reference"),
        ({"image": "python:3.11\nRUN echo PWNED"}, r"image: 'python:3.11\\nRUN echo PWNED' is not an image"),
        ({"secrets": ["my secret"]}, "secrets: Secret: key: 'my secret' is not a Secret data key"),
        ({"secrets": [""]}, "secrets: Secret: key: '' is not a Secret data key"),
        ({"secrets": ["a/b"]}, "secrets: Secret: key: 'a/b' is not a Secret data key"),
        ({"env_vars": {"PYTHONPATH": "/x"}}, "env_vars: 'PYTHONPATH' is reserved"),
        ({"env_vars": {"FLYTE_INFRA_MODULE": "m"}}, "env_vars: 'FLYTE_INFRA_MODULE' is reserved"),
        ({"env_vars": {"API": "x"}, "secrets": ["api"]}, "secrets\\[0\\]: variable 'API' is already set"),
    ],
)
def test_images_secrets_and_variables_that_could_inject_or_collide_are_one_line_errors(spec, message):
    with pytest.raises(InvalidSpecError, match=rf"^TaskEnvironment 'e': .*{message}[^\n]*$"):
        TaskEnvironment("e", **spec)


def test_secret_groups_and_variable_names_are_checked_where_the_secret_is_made():
    with pytest.raises(InvalidSpecError, match=r"^Secret: group: 'bad-group!' is not a DNS-1123 label"):
        Secret(key="k", group="Bad_Group!")
    with pytest.raises(InvalidSpecError, match=r"^Secret: as_env_var: '1-bad' is not an environment"):
        Secret(key="k", as_env_var="1-bad")
    with pytest.raises(InvalidSpecError, match="as_env_var: 'FLYTE_INFRA_TOKEN' is reserved"):
        Secret(key="k", as_env_var="FLYTE_INFRA_TOKEN")
    tuned = TaskEnvironment("e", env_vars={"FLYTE_INFRA_CALL_TIMEOUT": "5"}, image="127.0.0.1:5000/base:1")
    assert tuned.env_vars == {"FLYTE_INFRA_CALL_TIMEOUT": "5"}  # the worker's limits stay tunable
