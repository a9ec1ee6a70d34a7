"""`flyte-infra preview/up/refresh/destroy/promote`: the project's program through the Automation API.

The engine is the pinned Pulumi toolchain (the CLI, its Python language host, and the kubernetes
and docker plugins): installed, or built into the cache by `python -m flyte_infra.devbox toolchain`.
It runs on a local `file://` backend unless PULUMI_BACKEND_URL says otherwise, with plugin
downloads and update checks off.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pulumi import automation as auto

from ..deploy.settings import load_stack_settings
from ..devbox.toolchain import Toolchain, find_toolchain
from ..errors import EngineError, PromotionError
from ..kube.cluster import diagnose

__all__ = ["IMAGE_TYPE", "StackRun", "destroy", "preview", "promote", "refresh", "up"]

IMAGE_TYPE = "docker:index/image:Image"
TOKEN_KEY = "flyte-infra:workerToken"


def engine_environment(project_dir: Path, toolchain: Toolchain) -> dict[str, str]:
    """Variables for a hermetic engine: the toolchain first on PATH, local state, no plugin
    downloads, no update checks."""
    variables = {
        **toolchain.environment({"PATH": os.environ.get("PATH", "")}),
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "PULUMI_BACKEND_URL": os.environ.get("PULUMI_BACKEND_URL")
        or (project_dir / ".pulumi-state").resolve().as_uri(),
        "PULUMI_PYTHON_CMD": sys.executable,
    }
    if "PULUMI_CONFIG_PASSPHRASE" not in os.environ and "PULUMI_CONFIG_PASSPHRASE_FILE" not in os.environ:
        raise EngineError(
            "set PULUMI_CONFIG_PASSPHRASE (it encrypts this stack's secrets, e.g. the registry password)"
        )
    return variables


@dataclass
class StackRun:
    """What one engine run did: the resources it touched, in the engine's order."""

    stack: str
    steps: list[tuple[str, str, str]] = field(default_factory=list)
    """(operation, type token, name) of every resource step, in the order the engine began them."""
    timeline: list[tuple[str, str]] = field(default_factory=list)
    """("begin" | "end", resource name) in the order the engine reported them."""
    outputs: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)

    def names_of(
        self, type_token: str, operations: tuple[str, ...] = ("create", "update", "replace")
    ) -> list[str]:
        return [name for op, kind, name in self.steps if kind == type_token and op in operations]


def _progress(run: StackRun, out: TextIO) -> Callable[[auto.EngineEvent], None]:
    def on_event(event: auto.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            metadata = event.resource_pre_event.metadata
            name = metadata.urn.rsplit("::", 1)[-1]
            operation = str(metadata.op.value if hasattr(metadata.op, "value") else metadata.op)
            run.steps.append((operation, metadata.type, name))
            run.timeline.append(("begin", name))
            if operation != "same" and metadata.type != "pulumi:pulumi:Stack":
                print(f"  {operation:<8} {metadata.type:<45} {name}", file=out, flush=True)
        elif event.res_outputs_event is not None:
            run.timeline.append(("end", event.res_outputs_event.metadata.urn.rsplit("::", 1)[-1]))
        elif event.diagnostic_event is not None and event.diagnostic_event.severity == "error":
            print(f"  error: {event.diagnostic_event.message.strip()}", file=out, flush=True)

    return on_event


def _stack(stack_name: str, project_dir: Path, variables: dict[str, str] | None = None) -> auto.Stack:
    toolchain = find_toolchain()
    if toolchain is None:
        raise EngineError(
            "no Pulumi toolchain: build it with `python -m flyte_infra.devbox toolchain` "
            "(or install the pinned pulumi CLI with its Python language host)",
            stack=stack_name,
        )
    variables = {**engine_environment(project_dir, toolchain), **(variables or {})}
    if variables["PULUMI_BACKEND_URL"].startswith("file://"):
        Path(variables["PULUMI_BACKEND_URL"].removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    command = auto.PulumiCommand(root=str(toolchain.pulumi.parent.parent), skip_version_check=True)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(project_dir), env_vars=variables, pulumi_command=command
    )
    stack = auto.create_or_select_stack(stack_name=stack_name, work_dir=str(project_dir), opts=options)
    if TOKEN_KEY not in stack.get_all_config():
        # workers authenticate calls with it: one per stack, kept encrypted in the stack's config
        stack.set_config(TOKEN_KEY, auto.ConfigValue(secrets.token_hex(32), secret=True))
    return stack


def preview(stack_name: str, project_dir: Path, out: TextIO = sys.stdout) -> StackRun:
    """`pulumi preview` of a stack: what would change, with no image built (build_on_preview off)."""
    run = StackRun(stack_name)
    stack = _stack(stack_name, project_dir)
    print(f"preview of stack '{stack_name}':", file=out)
    result = stack.preview(on_event=_progress(run, out))
    run.summary = {str(kind): count for kind, count in result.change_summary.items()}
    return run


def up(
    stack_name: str, project_dir: Path, out: TextIO = sys.stdout, *, skip_checkpoints: bool = False
) -> StackRun:
    """`pulumi up` of a stack: build and push images, then the Kubernetes objects, in dependency order.

    `skip_checkpoints` saves the state once at the end instead of after every step
    (`PULUMI_SKIP_CHECKPOINTS`): each step rewrites the whole state, so with hundreds of resources
    that is most of the engine's time, but an update that is killed midway then records none of
    what it created (`pulumi refresh` or `import` recovers it).
    """
    return _update(
        "up", stack_name, project_dir, out, {"PULUMI_SKIP_CHECKPOINTS": "true"} if skip_checkpoints else {}
    )


def refresh(stack_name: str, project_dir: Path, out: TextIO = sys.stdout) -> StackRun:
    """`pulumi refresh` of a stack: read every resource back and record what drifted."""
    return _update("refresh", stack_name, project_dir, out)


def destroy(stack_name: str, project_dir: Path, out: TextIO = sys.stdout) -> StackRun:
    """`pulumi destroy` of a stack: delete its Kubernetes objects (pushed images stay in the registry)."""
    return _update("destroy", stack_name, project_dir, out)


def _update(
    command: str, stack_name: str, project_dir: Path, out: TextIO, variables: dict[str, str] | None = None
) -> StackRun:
    run = StackRun(stack_name)
    stack = _stack(stack_name, project_dir, variables or {})
    print(f"{command} of stack '{stack_name}':", file=out)
    on_event = _progress(run, out)
    try:
        result: auto.UpResult | auto.RefreshResult | auto.DestroyResult
        if command == "up":
            result = stack.up(on_event=on_event)
        elif command == "refresh":
            result = stack.refresh(on_event=on_event)
        else:
            result = stack.destroy(on_event=on_event)
    except auto.CommandError as error:
        reasons = _cluster_reasons(stack_name, project_dir) if command == "up" else ""
        raise EngineError(
            f"pulumi {command} of stack '{stack_name}' failed: {_engine_error(error)}{reasons}",
            command=command,
            stack=stack_name,
            run=run,
        ) from error
    if isinstance(result, auto.UpResult):
        run.outputs = {key: value.value for key, value in result.outputs.items()}
    run.summary = {str(kind): count for kind, count in (result.summary.resource_changes or {}).items()}
    return run


def promote(source: str, target: str, project_dir: Path, out: TextIO = sys.stdout) -> StackRun:
    """Deploy to `target` the image digests that `source` published; refuses if anything would build."""
    settings = load_stack_settings(project_dir, target)
    if settings.promote_from != source:
        raise PromotionError(
            f"stack '{target}' promotes from '{settings.promote_from}', not '{source}' "
            f"(set flyte-infra:promoteFrom in stacks/Pulumi.{target}.yaml)",
            source=f"stack '{source}'",
            target=target,
        )
    run = up(target, project_dir, out)
    built = run.names_of(IMAGE_TYPE)
    if built:
        raise PromotionError(
            f"promotion to '{target}' built images {built}; it must only reuse digests",
            source=f"stack '{source}'",
            target=target,
        )
    return run


def _cluster_reasons(stack_name: str, project_dir: Path) -> str:
    """Why environments of the stack's cluster are not Available, as the cluster says (the provider
    reports only a timeout): `; environment 'x': <reason>` each, or "" in render mode."""
    settings = load_stack_settings(project_dir, stack_name)
    if not settings.kubeconfig:
        return ""
    try:
        reasons = diagnose(settings.kubeconfig, settings.namespace)
    except Exception as error:  # the cluster may be what failed: keep the engine's own message
        return f"; the cluster could not be asked why ({type(error).__name__})"
    return "".join(f"; environment '{name}': {reason}" for name, reason in sorted(reasons.items()))


def _engine_error(error: auto.CommandError) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    interesting = [line for line in lines if "error" in line.lower()] or lines[-3:]
    return " | ".join(interesting[-4:])
