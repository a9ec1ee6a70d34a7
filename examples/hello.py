"""The smallest multi-environment program: a sync task in one environment calls another's."""

import flyte_infra as flyte

greeter = flyte.TaskEnvironment(name="greeter", resources=flyte.Resources(cpu="100m", memory="128Mi"))
frontend = flyte.TaskEnvironment(name="frontend", depends_on=[greeter])


@greeter.task
def greet(name: str) -> str:
    return f"hello, {name}"


@frontend.task
def welcome(names: list[str]) -> list[str]:
    return [greet(name) for name in names]


if __name__ == "__main__":
    print(flyte.run(welcome, ["ada", "grace"]))
