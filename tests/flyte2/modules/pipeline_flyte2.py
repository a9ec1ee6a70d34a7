"""A Flyte 2 module as users write it: snake_case names, the Image builder, task options."""

import asyncio
from datetime import timedelta

import flyte
from flyte import Resources

image = (
    flyte.Image.from_debian_base(python_version=(3, 12), name="pipeline")
    .with_apt_packages("git", "curl")
    .with_pip_packages("pyyaml>=6")
    .with_env_vars({"MODE": "test"})
    .with_commands(["echo built > /tmp/built"])
    .with_workdir("/app")
)

data_prep = flyte.TaskEnvironment(
    name="data_prep",
    image=image,
    resources=Resources(cpu=1, memory="1Gi", shm="auto"),
    reusable=flyte.ReusePolicy(replicas=(2, 4), concurrency=3),
    cache="auto",
    secrets="API_TOKEN",
)
trainer = flyte.TaskEnvironment(
    "trainer_gpu",
    image=image.clone(name="trainer").with_pip_packages("numpy>=1.26"),
    resources=Resources(gpu="A100 80G:8"),
    depends_on=[data_prep],
    pod_template=flyte.PodTemplate(
        pod_spec={"nodeSelector": {"pool": "gpu"}}, labels={"team": "ml"}
    ).with_termination_grace_period(timedelta(minutes=2)),
)

attempts: dict[str, int] = {}


@data_prep.task(retries=2, cache=flyte.Cache(behavior="auto"), short_name="flaky")
def flaky(x: int) -> int:
    attempts["flaky"] = attempts.get("flaky", 0) + 1
    if attempts["flaky"] < 3:
        raise RuntimeError(f"attempt {attempts['flaky']} fails")
    return x * 10


@data_prep.task(timeout=flyte.Timeout(max_runtime=timedelta(seconds=0.2)))
async def slow(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@flyte.trace
def helper(x: int) -> int:
    return x + 1


@trainer.task(queue="gpu", report=True)
async def train(xs: list[int]) -> list[int]:
    with flyte.group("fan-out"):
        return [helper(value) for value in flyte.map(flaky.override(retries=5), xs)]


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.run(train, xs=[1, 2])
    print(run.outputs())
