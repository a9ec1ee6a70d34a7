"""The `flyte-infra` command line: check, plan, graph, render, run, and the Pulumi stages."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from .artifacts.diagram import render_diagram
from .artifacts.render import render
from .deploy.packages import masked
from .deploy.plan import build_plan
from .deploy.preflight import PreflightReport, preflight
from .deploy.settings import StackSettings, load_stack_settings
from .docker.build import build_images
from .errors import FlyteInfraError, UsageError
from .loader import Program, load_program
from .packaging.lock import Lock, lock_path
from .packaging.resolve import OFFLINE_VARIABLE, offline_mode, program_lock, stale_environments
from .runtime.run import run_task

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]


def _print_findings(report: PreflightReport) -> None:
    for finding in report.findings:
        print(f"  {finding}", file=sys.stderr)


def _checked(program: Program) -> PreflightReport:
    report = preflight(program.environments)
    if report.findings:
        print(
            f"preflight: {len(report.errors)} error(s), {len(report.warnings)} warning(s)",
            file=sys.stderr,
        )
        _print_findings(report)
    return report


def _locked(program: Program, *, write: bool) -> Lock:
    """The program's lock: stored, or resolved now (written with `write`); offline, stored only."""
    return program_lock(program, offline=offline_mode(), write=write)


def _checked_lock(program: Program) -> Lock | None:
    """For `check` and `plan`, which build nothing: the lock, resolved if need be but not written;
    offline without an up-to-date lock, a warning (the rest is still checked) and None."""
    if offline_mode() and program.module_file is not None:
        stale = stale_environments(program)
        if stale:
            names = ", ".join(stale)
            print(
                f"warning: packages not resolved (offline, and {lock_path(program.module_file).name} is "
                f"missing or out of date for: {names}); `flyte-infra lock` resolves them",
                file=sys.stderr,
            )
            return None
    return _locked(program, write=False)


def cmd_check(args: argparse.Namespace) -> int:
    """Run preflight and resolve the packages (the stored lock when it is up to date); exit 1 on errors."""
    program = load_program(args.module)
    report = _checked(program)
    if not report.ok:
        return 1
    lock = _checked_lock(program)
    locked = _lock_summary(lock) if lock is not None else "packages not resolved"
    print(f"ok: {len(program.environments)} environment(s), {locked}, no errors")
    return 0


def _lock_summary(lock: Lock) -> str:
    packages = sum(len(group.packages) for group in lock.groups)
    return f"{packages} package(s) locked in {len(lock.groups)} resolution(s)"


def cmd_lock(args: argparse.Namespace) -> int:
    """Resolve every DAG's packages with uv and write the lock beside the module (commit it)."""
    program = load_program(args.module)
    report = _checked(program)
    if not report.ok:
        return 1
    if program.module_file is None:
        raise UsageError(
            f"module '{program.module_name}' has no source file to put a lock beside", subject="lock"
        )
    path = lock_path(program.module_file)
    stale = stale_environments(program)
    if args.check:
        if stale:
            print(f"error: {path.name} is missing or out of date for: {', '.join(stale)}", file=sys.stderr)
            return 1
        print(f"ok: {path.name} is up to date")
        return 0
    lock = program_lock(program, offline=offline_mode(), write=True)
    print(f"wrote {path}: {_lock_summary(lock)} ({len(stale)} environment(s) resolved now)")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Show deploy order, parallel waves and per-environment image and compute."""
    program = load_program(args.module)
    report = _checked(program)
    if not report.ok:
        return 1
    summary = build_plan(report.raise_for_errors())
    _checked_lock(program)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print("deploy order: " + " -> ".join(summary["order"]))
    for number, wave in enumerate(summary["waves"], start=1):
        print(f"wave {number}: {', '.join(wave)}")
    for name in summary["order"]:
        details = summary["environments"][name]
        print(f"\n{name}")
        print(f"  image:      {details['image']}")
        print(f"  packages:   {', '.join(details['packages']) or '-'}")
        print(f"  depends on: {', '.join(details['depends_on']) or '-'}")
        print(f"  requests:   {_pairs(details['requests'])}")
        print(f"  limits:     {_pairs(details['limits'])}")
        print(f"  tasks:      {', '.join(details['tasks']) or '-'}")
    return 0


def _pairs(mapping: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in mapping.items()) or "-"


def cmd_graph(args: argparse.Namespace) -> int:
    """Draw the environments, their depends_on edges and deploy waves."""
    program = load_program(args.module)
    report = _checked(program)
    if report.graph is None:
        return 1
    path = render_diagram(report.graph, Path(args.output))
    print(f"wrote {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a task in-process (tasks it calls in other environments run here too); print its result."""
    raw_args = {}
    for item in args.arg:
        name, separator, value = item.partition("=")
        if not separator:
            raise UsageError(f"--arg '{item}': write it as name=value", subject="--arg")
        raw_args[name] = value
    program = load_program(args.module)
    try:
        result = run_task(program, args.task, raw_args)
    except FlyteInfraError:
        raise
    except Exception as error:  # the task's own exception: one line, the traceback with --verbose
        if args.verbose or args.debug:
            traceback.print_exception(error)
        message = str(error).splitlines()[0] if str(error) else ""
        print(f"error: task '{args.task}' failed: {type(error).__name__}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _checked_stack(args: argparse.Namespace) -> tuple[Program, StackSettings] | None:
    """The module and the stack's settings, or None when preflight found errors (printed)."""
    program = load_program(args.module)
    settings = load_stack_settings(Path(args.project), args.stack)
    return (program, settings) if _checked(program).ok else None


def cmd_build(args: argparse.Namespace) -> int:
    """Build and push every environment's image with the docker CLI; print the refs by digest."""
    checked = _checked_stack(args)
    if checked is None:
        return 1
    program, settings = checked
    lock = _locked(program, write=True)
    references = build_images(program, settings, Path(args.project) / ".flyte-infra" / "build", lock=lock)
    text = json.dumps(references, indent=2, sort_keys=True)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Write the manifests and Dockerfiles a stack would deploy (GitOps; no cluster needed)."""
    checked = _checked_stack(args)
    if checked is None:
        return 1
    program, settings = checked
    out_dir = Path(args.output)
    lock = _locked(program, write=True)
    if args.images:
        refs = _image_refs(args.images)
        written = render(program, settings, out_dir, refs, f"--images {args.images}", lock=lock)
    else:
        written = render(program, settings, out_dir, lock=lock)
    print(f"wrote {len(written)} files under {args.output}")
    return 0


def _image_refs(path: str) -> dict[str, str]:
    """The environment -> image ref map in a file that `flyte-infra build -o` wrote."""
    try:
        refs = json.loads(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"--images {path}: {error.strerror}", subject="--images") from error
    except ValueError as error:
        raise UsageError(f"--images {path}: not JSON ({error})", subject="--images") from error
    if not isinstance(refs, dict) or not all(isinstance(ref, str) for ref in refs.values()):
        raise UsageError(
            f"--images {path}: expected a JSON object of environment -> image ref, as `flyte-infra build -o` "
            "writes",
            subject="--images",
        )
    return refs


def cmd_preview(args: argparse.Namespace) -> int:
    """Preview a stack with the Pulumi engine (nothing is built or deployed)."""
    from .pulumi.automation import preview  # here: Pulumi is an optional dependency

    run = preview(args.stack, Path(args.project))
    print(f"preview: {run.summary}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Deploy a stack: build and push images, then Kubernetes objects, in dependency order."""
    from .pulumi.automation import up

    run = up(args.stack, Path(args.project), skip_checkpoints=args.skip_checkpoints)
    print(f"up: {run.summary}")
    for name, ref in sorted(run.outputs.get("imageRefs", {}).items()):
        print(f"  {name}: {ref}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show where a deployed stack's environments run: image digest, nodes and readiness."""
    from .kube.cluster import environment_status

    settings = load_stack_settings(Path(args.project), args.stack)
    if not settings.kubeconfig:
        raise UsageError(
            f"stack '{args.stack}' renders to a directory (renderDir): no cluster to ask", subject="status"
        )
    rows = environment_status(settings.kubeconfig, settings.namespace)
    width = max([len("environment"), *(len(row.environment) for row in rows)])
    print(f"{'environment':<{width}}  {'ready':<5}  {'image digest':<19}  nodes")
    for row in rows:
        digest = row.image.rsplit("@", 1)[-1][:19] if "@" in row.image else row.image
        print(f"{row.environment:<{width}}  {row.ready:<5}  {digest:<19}  {', '.join(row.nodes) or '-'}")
    return 0 if rows and all(row.available for row in rows) else 1


def cmd_refresh(args: argparse.Namespace) -> int:
    """Read every resource of a stack back from Docker and Kubernetes and record what drifted."""
    from .pulumi.automation import refresh

    run = refresh(args.stack, Path(args.project))
    print(f"refresh: {run.summary}")
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    """Delete a stack's Kubernetes objects (its pushed images stay in the registry)."""
    from .pulumi.automation import destroy

    run = destroy(args.stack, Path(args.project))
    print(f"destroy: {run.summary}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Deploy to the next stage the exact image digests the previous stage published (no rebuild)."""
    from .pulumi.automation import promote

    run = promote(args.source, args.target, Path(args.project))
    print(f"promoted {args.source} -> {args.target}: {run.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flyte-infra", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never resolve packages: use the stored lock, and fail where it is missing or out of date",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Command) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=(handler.__doc__ or "").strip().splitlines()[0])
        sub.set_defaults(handler=handler)
        sub.add_argument("module", metavar="MODULE", help="a .py file or dotted module defining environments")
        return sub

    command("check", cmd_check)
    command("lock", cmd_lock).add_argument(
        "--check", action="store_true", help="exit 1 if the lock is missing or out of date; write nothing"
    )
    command("plan", cmd_plan).add_argument("--json", action="store_true", help="print JSON")
    command("graph", cmd_graph).add_argument(
        "-o", "--output", required=True, help="file to write: .svg, .png or .dot"
    )
    run = command("run", cmd_run)
    run.add_argument("task", metavar="TASK", help="task name, or environment.task")
    run.add_argument(
        "--arg", action="append", default=[], metavar="NAME=VALUE", help="an argument (JSON or text)"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="print the traceback of a task's exception")
    for name, handler in (("build", cmd_build), ("render", cmd_render)):
        sub = command(name, handler)
        sub.add_argument("--stack", required=True, help="stack whose settings to use: dev, staging, prod")
        sub.add_argument("--project", default=".", help="directory of Pulumi.yaml and stacks/ (default: .)")
    commands.choices["build"].add_argument("-o", "--output", help="also write the refs to this JSON file")
    commands.choices["render"].add_argument("-o", "--output", required=True, help="directory to write")
    commands.choices["render"].add_argument("--images", help="JSON file of env -> image ref (from build)")

    def stage_command(name: str, handler: Command) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=(handler.__doc__ or "").strip().splitlines()[0])
        sub.set_defaults(handler=handler)
        sub.add_argument("--project", default=".", help="directory of Pulumi.yaml (default: .)")
        return sub

    stage_command("preview", cmd_preview).add_argument("--stack", required=True, help="dev, staging, prod")
    for name, handler in (
        ("up", cmd_up),
        ("refresh", cmd_refresh),
        ("destroy", cmd_destroy),
        ("status", cmd_status),
    ):
        stage_command(name, handler).add_argument("--stack", required=True, help="dev, staging, prod")
    commands.choices["up"].add_argument(
        "--skip-checkpoints",
        action="store_true",
        help="save the state once at the end, not after every step: much faster for hundreds of "
        "resources, but an interrupted update records nothing it created",
    )
    promote = stage_command("promote", cmd_promote)
    promote.add_argument("--from", dest="source", required=True, help="the stage whose digests to deploy")
    promote.add_argument("--to", dest="target", required=True, help="the stage to deploy them to")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = os.environ.get(OFFLINE_VARIABLE)
    if args.offline:  # the Pulumi program, run by the engine, reads it too
        os.environ[OFFLINE_VARIABLE] = "1"
    try:
        return _run(args)
    finally:
        if previous is None:
            os.environ.pop(OFFLINE_VARIABLE, None)
        else:
            os.environ[OFFLINE_VARIABLE] = previous


def _run(args: argparse.Namespace) -> int:
    try:
        code = int(args.handler(args))
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # `flyte-infra plan X | head`: the reader has gone, end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except FlyteInfraError as error:
        if args.debug:  # URL credentials masked: the chain holds the values as given
            print(masked("".join(traceback.format_exception(error))), end="", file=sys.stderr)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
