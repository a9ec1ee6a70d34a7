"""Measure how many selected flyte-sdk example files load unmodified in `flyte-infra check` and `plan`.

For every file of the corpus (see select_corpus.py) run, in a subprocess with cwd = the file's folder
and PYTHONPATH = --flyte-path (a directory that provides a `flyte` module):

    flyte-infra check FILE
    flyte-infra plan FILE

and classify the outcome:

    ok         exit 0
    findings   exit 1 and stderr starts with "preflight:" (preflight findings only)
    one-line   exit 1 or 2 with a single non-empty stderr line (an error naming something)
    multi-line a traceback, or any other failure with more than one line / another exit code
    timeout    no exit within --timeout seconds

"pass" = ok + findings (the issue's target: >= 90% of the base set). Failures are grouped by cause,
normalised from the error line (file names and line numbers removed).

Every command runs under `unshare -n` when available (a network namespace with no interfaces
up), so module-level code of the examples cannot reach the network; the CLI runs with `--offline`,
so packages are not resolved (the examples have no lock; `check` says so in a warning), and what is
measured is whether the Flyte code loads and passes preflight.

Copied from the issue-17 research (/work/flyte-compat); defaults changed to this worktree's `flyte`
and `python -m flyte_infra.cli`.

Usage:
    python benchmarks/flyte_compat/measure.py                # this worktree, base set (118 files)
    python measure.py --flyte-path shim                      # baseline, base set (118 files)
    python measure.py --flyte-path shim --set extended       # flyte.io / errors / report set
    python measure.py --flyte-path DIR --json out.json --details
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from select_corpus import DEFAULT_EXAMPLES, select

HERE = Path(__file__).resolve().parent
COMMANDS = ("check", "plan")
KINDS = ("ok", "findings", "one-line", "multi-line", "timeout")


@dataclass
class Outcome:
    file: str
    command: str
    kind: str
    returncode: int | None
    cause: str
    first_line: str
    stderr: str = ""


def _network_isolation() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def cause_of(line: str) -> str:
    """A short, file-independent key for a one-line error."""
    text = re.sub(r"^error: ", "", line.strip())
    text = re.sub(r" \(at [^)]*\)$", "", text)
    text = re.sub(r"^cannot load '[^']*': ", "", text)
    patterns: list[tuple[str, str]] = [
        (r"is not a DNS-1035 label", "environment name not a DNS-1035 label (underscore/upper case)"),
        (r"module 'flyte' has no attribute '([^']+)'", r"flyte.\1 missing"),
        (r"cannot import name '([^']+)' from 'flyte'", r"flyte.\1 missing (from-import)"),
        (r"No module named '([^']+)'", r"no module \1"),
        (r"type object '(\w+)' has no attribute '([^']+)'", r"\1.\2 missing"),
        (r"'(\w+)' object has no attribute '([^']+)'", r"\1.\2 missing"),
        (r"(\w+(?:\.\w+)*)\(\) got an unexpected keyword argument '([^']+)'", r"\1(\2=) unsupported"),
        (r"got an unexpected keyword argument '([^']+)'", r"unexpected kwarg \1="),
        (r"(\w+(?:\.\w+)*)\(\) takes .* positional argument", r"\1() positional args"),
        (r"^TaskEnvironment '[^']*': (\w+): Extra inputs are not permitted", r"TaskEnvironment(\1=) unknown"),
        (r"^TaskEnvironment '[^']*': (\w+(?:\.\w+)*): (.*)", r"TaskEnvironment \1: \2"),
        (r"^Resources\b.*?: (\w+): (.*)", r"Resources \1: \2"),
        (r"(\w+): Extra inputs are not permitted", r"\1= unknown field"),
        (r"defines no TaskEnvironment", "defines no TaskEnvironment (after load)"),
    ]
    for pattern, replacement in patterns:
        found = re.search(pattern, text)
        if found:
            return found.expand(replacement)[:120]
    text = re.sub(r"'[^']*'", "'…'", text)
    return text[:120]


def run_one(
    path: Path, command: str, flyte_path: str, timeout: float, cli: list[str], prefix: list[str]
) -> Outcome:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (flyte_path, env.get("PYTHONPATH", "")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        done = subprocess.run(
            [*prefix, *cli, command, path.name],
            cwd=path.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Outcome(str(path), command, "timeout", None, "timeout", "")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    first = lines[0] if lines else done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    if done.returncode == 0:
        return Outcome(str(path), command, "ok", 0, "", first)
    if done.returncode == 1 and lines and lines[0].startswith("preflight:"):
        return Outcome(str(path), command, "findings", 1, "", first)
    if done.returncode in (1, 2) and len(lines) == 1 and "Traceback" not in lines[0]:
        return Outcome(str(path), command, "one-line", done.returncode, cause_of(lines[0]), first)
    last = lines[-1] if lines else f"exit {done.returncode}, no stderr"
    return Outcome(
        str(path),
        command,
        "multi-line",
        done.returncode,
        "multi: " + cause_of(last),
        last,
        done.stderr[-3000:],
    )


def _cli_version(cli: list[str]) -> str:
    """Where the CLI's flyte_infra lives and, if it is a git work tree, its commit."""
    executable = shutil.which(cli[0]) or cli[0]
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import flyte_infra, pathlib; print(pathlib.Path(flyte_infra.__file__).parent)",
        ],
        capture_output=True,
        text=True,
    )
    location = probe.stdout.strip() or "?"
    head = subprocess.run(
        ["git", "-C", location, "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", location, "status", "--short", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return f"{executable} -> {location} @ {head or '?'}{' (+local changes)' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, default=DEFAULT_EXAMPLES)
    parser.add_argument("--set", choices=["base", "extended"], default="base")
    parser.add_argument(
        "--flyte-path",
        default=str(HERE.parent.parent),
        help="directory put first on PYTHONPATH that provides `flyte` (default: this worktree)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="MODULE",
        help="extra allowed top-level modules for selection (default: typing_extensions -> 118 files)",
    )
    parser.add_argument(
        "--cli",
        default=f"{sys.executable} -m flyte_infra.cli --offline",
        help="the CLI to run (split on spaces)",
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 4)
    parser.add_argument("--no-isolate", action="store_true", help="do not run under `unshare -n`")
    parser.add_argument("--details", action="store_true", help="print every file's outcome")
    parser.add_argument("--json", type=Path, help="write every outcome to this file")
    args = parser.parse_args(argv)

    allow = tuple(args.allow) if args.allow is not None else ("typing_extensions",)
    files = select(args.examples, allow=allow).get(args.set, [])
    prefix = [] if args.no_isolate else _network_isolation()
    cli = args.cli.split()
    flyte_path = str(Path(args.flyte_path).resolve()) if args.flyte_path else ""
    jobs = [(path, command) for path in files for command in COMMANDS]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(
            pool.map(lambda job: run_one(job[0], job[1], flyte_path, args.timeout, cli, prefix), jobs)
        )

    root = args.examples.resolve()
    if args.details:
        width = max((len(str(Path(o.file).relative_to(root))) for o in outcomes), default=10)
        for outcome in outcomes:
            relative = Path(outcome.file).relative_to(root)
            print(f"{relative!s:{width}}  {outcome.command:5s}  {outcome.kind:10s}  {outcome.cause}")
        print()

    print(f"set={args.set}  files={len(files)}  flyte-path={flyte_path or '-'}  cli={args.cli}")
    print(f"flyte-infra: {_cli_version(cli)}")
    print(f"{'command':8s}" + "".join(f"{kind:>11s}" for kind in KINDS) + f"{'pass':>14s}")
    for command in COMMANDS:
        mine = [o for o in outcomes if o.command == command]
        counts = Counter(o.kind for o in mine)
        passed = counts["ok"] + counts["findings"]
        rate = 100.0 * passed / len(mine) if mine else 0.0
        row = "".join(f"{counts[kind]:>11d}" for kind in KINDS)
        print(f"{command:8s}{row}  {passed:>4d} {rate:5.1f}%")
    both = sum(
        1 for path in files if all(o.kind in ("ok", "findings") for o in outcomes if o.file == str(path))
    )
    if files:
        print(f"both     {both}/{len(files)} = {100.0 * both / len(files):.1f}% pass check and plan")

    causes = Counter(o.cause for o in outcomes if o.command == "check" and o.kind not in ("ok", "findings"))
    if causes:
        print("\nfailure causes (check):")
        for cause, count in causes.most_common():
            print(f"  {count:4d}  {cause}")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
