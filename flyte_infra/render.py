"""`flyte-infra render`: the manifests and build contexts a stack would deploy, written to files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from .dockerfile import image_spec, write_build_context
from .loader import Program
from .manifests import environment_manifests, namespace_manifest
from .preflight import preflight
from .promotion import promoted_ref
from .settings import StackSettings

__all__ = ["render"]


def render(
    program: Program, settings: StackSettings, out_dir: Path, image_refs: Mapping[str, str] | None = None
) -> list[Path]:
    """Write `<out>/namespace.yaml`, `<out>/<env>/manifests.yaml` and `<out>/images/<tag>/` contexts.

    Preflight runs first: on an error nothing is written. Images are referenced by digest when the
    refs are known (`image_refs`, e.g. from `flyte-infra build`, or the stack's `images`), each
    checked to be the image of the environment's current spec; otherwise by the spec's tag.
    """
    graph = preflight(program.environments).raise_for_errors()
    known = dict(image_refs or settings.images)
    source = "the given images" if image_refs else "flyte-infra:images"
    specs = {name: image_spec(graph.environments[name], program, settings) for name in graph.order}
    refs = {name: promoted_ref(known, name, spec.tag, source) for name, spec in specs.items() if known}
    written = [_write_yaml(out_dir / "namespace.yaml", [namespace_manifest(settings)], "")]
    for name, spec in specs.items():
        environment = graph.environments[name]
        image_ref = refs.get(name, spec.image_name(settings))
        note = (
            ""
            if "@sha256:" in image_ref
            else (
                "# The image is referenced by tag: no digest is known before it is built and pushed\n"
                "# (`flyte-infra up`, or pass the digests of a deployed stack).\n"
            )
        )
        manifests = environment_manifests(environment, graph, settings, image_ref)
        written.append(_write_yaml(out_dir / name / "manifests.yaml", manifests, note))
        written.append(write_build_context(spec, out_dir / "images" / spec.tag) / "Dockerfile")
    return written


def _write_yaml(path: Path, documents: list[dict[str, object]], header: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump_all(documents, sort_keys=False))
    return path
