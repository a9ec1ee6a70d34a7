"""An ML pipeline across three environments: data prep on CPU, training on GPUs, and an orchestrator.

The orchestrator awaits tasks of the other two, so it depends on both (they deploy first) and its
image carries every package they need.
"""

import asyncio

import flyte_infra as flyte

data_env = flyte.TaskEnvironment(
    name="data-prep",
    image="python:3.11-slim-bookworm",
    packages=["six>=1.16"],
    resources=flyte.Resources(cpu="500m", memory="512Mi"),
    description="Loads and normalises the training data.",
)

train_env = flyte.TaskEnvironment(
    name="train",
    image="python:3.11-slim-bookworm",
    packages=["six>=1.16", "attrs==25.4.0"],
    resources=flyte.Resources(cpu=("1", "2"), memory="2Gi", gpu="A100:2"),
    env_vars={"TRAIN_EPOCHS": "3"},
    description="Fits the model on GPUs.",
)

pipeline_env = flyte.TaskEnvironment(
    name="pipeline",
    image="python:3.11-slim-bookworm",
    packages=["six>=1.16", "attrs==25.4.0"],
    resources=flyte.Resources(cpu="250m", memory="256Mi"),
    depends_on=[data_env, train_env],
    description="Orchestrates the pipeline.",
)


@data_env.task
async def load_data(size: int) -> list[float]:
    """A deterministic toy data set: 0, 1, ..., size-1 scaled to [0, 1]."""
    import six  # the environment's own package, present in its image

    assert six.PY3
    return [i / max(size - 1, 1) for i in range(size)]


@train_env.task
async def train(data: list[float], epochs: int = 3) -> dict[str, float]:
    """Fit y = w * x to y = 2x with gradient steps; returns the weight and the final loss."""
    import attrs

    assert attrs.has(attrs.make_class("Point", ["x", "y"]))
    weight = 0.0
    for _ in range(epochs * 20):
        gradient = sum(2 * (weight * x - 2 * x) * x for x in data) / len(data)
        weight -= 0.5 * gradient
    loss = sum((weight * x - 2 * x) ** 2 for x in data) / len(data)
    return {"weight": round(weight, 4), "loss": round(loss, 8)}


@pipeline_env.task
async def ml_pipeline(size: int = 8, epochs: int = 3) -> dict[str, float]:
    """Load data and train on it; each step runs in its own environment."""
    data = await load_data(size)
    model = await train(data, epochs)
    return {"samples": float(len(data)), **model}


if __name__ == "__main__":
    print(asyncio.run(ml_pipeline()))
