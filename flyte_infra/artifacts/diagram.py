"""A picture of the environments: Graphviz DOT text (pure), rendered to SVG/PNG by the `dot` program."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..deploy.graph import EnvironmentGraph
from ..errors import DiagramError, UsageError

__all__ = ["render_diagram", "to_dot"]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'


def to_dot(graph: EnvironmentGraph) -> str:
    """DOT text: one box per environment (image, compute, tasks), one cluster per deploy wave, and an
    edge from each environment to those it depends on."""
    lines = [
        "digraph environments {",
        "  rankdir=BT;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef4ff", fontname="Helvetica"];',
        '  edge [label="depends on", fontsize=9, fontname="Helvetica"];',
    ]
    for number, wave in enumerate(graph.waves, start=1):
        lines.append(f"  subgraph cluster_wave_{number} {{")
        lines.append(f'    label={_quote(f"wave {number}")}; style=dashed; color="#999999";')
        for name in wave:
            environment = graph.environments[name]
            compute = environment.resources.summary()
            tasks = ", ".join(environment.tasks) or "no tasks"
            label = "\\n".join(_escape(part) for part in (name, environment.image, compute, tasks) if part)
            lines.append(f'    {_quote(name)} [label="{label}"];')
        lines.append("  }")
    for name, dependencies in graph.dependencies.items():
        for dependency in dependencies:
            lines.append(f"  {_quote(name)} -> {_quote(dependency)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_diagram(graph: EnvironmentGraph, output: Path) -> Path:
    """Write the diagram as .dot, .svg or .png (by suffix); SVG and PNG need Graphviz's `dot`."""
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in ("dot", "gv", "svg", "png"):
        raise UsageError(f"cannot write '{output}': use a .svg, .png or .dot file", subject="--output")
    text = to_dot(graph)
    if fmt in ("dot", "gv"):
        output.write_text(text)
        return output
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError(
            "Graphviz 'dot' is not installed (apt-get install graphviz), or write a .dot file",
            output=str(output),
        )
    completed = subprocess.run([dot, f"-T{fmt}", "-o", str(output)], input=text.encode(), capture_output=True)
    if completed.returncode != 0:
        raise DiagramError(
            f"dot failed: {completed.stderr.decode(errors='replace').strip()}", output=str(output)
        )
    return output
