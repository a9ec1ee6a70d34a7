"""1,000 environments through the Pulumi program under mocks: seconds in all and per environment.

Measures our side of a `pulumi preview`: preflight, Dockerfiles and build contexts, manifests, and
the registration of every component and child resource with the (mock) engine. Target: < 10 s.
The lock is given (made-up wheels, as in the pure tests): resolving is uv's work, cached, and
measured by bench_images.

    python benchmarks/bench_pulumi_mocks.py [SIZE]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pulumi

from flyte_infra.deploy.settings import StackSettings
from flyte_infra.loader import Program
from flyte_infra.pulumi import deploy

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from bench_core import generate

from tests.locks import fake_lock


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "docker-build:index:Image":
            state["ref"] = args.inputs["tags"][0] + "@sha256:" + "0" * 64
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def main(size: int) -> None:
    environments = generate(size, faulty_every=None)  # a graph that passes preflight
    source = Path(tempfile.mkdtemp()) / "generated.py"
    source.write_text("# generated environments\n")
    program = Program("generated", (("generated.py", source),), tuple(environments))
    settings = StackSettings.from_config({"module": str(source)}, stack="bench")
    lock = fake_lock(environments)
    pulumi.runtime.set_mocks(Mocks(), project="flyte-infra", stack="bench", preview=True)
    timing: dict[str, float] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # the SDK's decorator has no types
    def run() -> Any:
        start = time.perf_counter()
        components = deploy(program, settings, lock=lock, worker_token="bench-token")
        timing["registered"] = time.perf_counter() - start
        return pulumi.Output.all(*[c.image_ref for c in components.values()])

    start = time.perf_counter()
    run()
    total = time.perf_counter() - start
    print(
        f"{size} environments: {total:.2f} s in all ({timing['registered']:.2f} s to register), "
        f"{total / size * 1e3:.2f} ms per environment; target < 10 s"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000)
