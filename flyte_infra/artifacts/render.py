"""`flyte-infra render`: the manifests and build contexts a stack would deploy, written to files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..deploy.preflight import preflight
from ..deploy.promotion import promoted_ref
from ..deploy.settings import StackSettings
from ..loader import Program
from .dockerfile import image_spec, write_build_context
from .manifests import environment_manifests, namespace_manifest

__all__ = ["render"]


def render(
    program: Program,
    settings: StackSettings,
    out_dir: Path,
    image_refs: Mapping[str, str] | None = None,
    refs_source: str = "the given images",
) -> list[Path]:
    """Write `<out>/namespace.yaml`, `<out>/<env>/manifests.yaml` and `<out>/images/<tag>/` contexts.

    Everything is computed before anything is written, so a preflight error (or any other) leaves
    `out_dir` untouched. Images are referenced by digest when the refs are known (`image_refs`, e.g.
    from `flyte-infra build`, else the stack's `images`), each checked to be the image of the
    environment's current spec (errors name `refs_source`, where the refs came from); otherwise by
    the spec's tag, which a comment in the file points out. Returns the written files, each once.
    """
    graph = preflight(program.environments).raise_for_errors()
    settings.check_environments(graph.environments)
    known = dict(image_refs or settings.images)
    source = refs_source if image_refs else f"stack '{settings.stack}' (flyte-infra:images)"
    specs = {name: image_spec(graph.environments[name], program, settings) for name in graph.order}
    documents: dict[Path, tuple[str, list[dict[str, Any]]]] = {
        out_dir / "namespace.yaml": ("", [namespace_manifest(settings)])
    }
    for name, spec in specs.items():
        image_ref = promoted_ref(known, name, spec.tag, source) if known else spec.image_name(settings)
        manifests = environment_manifests(graph.environments[name], graph, settings, image_ref)
        documents[out_dir / name / "manifests.yaml"] = ("" if "@sha256:" in image_ref else _BY_TAG, manifests)
    written = [_write_yaml(path, header, objects) for path, (header, objects) in documents.items()]
    contexts = {spec.tag: spec for spec in specs.values()}  # identical specs share one image
    for tag, spec in contexts.items():
        written.append(write_build_context(spec, out_dir / "images" / tag) / "Dockerfile")
    return written


_BY_TAG = (
    "# The image is referenced by tag: no digest is known before it is built and pushed. To pin\n"
    "# digests: `flyte-infra build ... -o refs.json`, then `flyte-infra render ... --images refs.json`.\n"
)


def _write_yaml(path: Path, header: str, documents: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump_all(documents, sort_keys=False))
    return path
