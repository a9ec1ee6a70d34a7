"""`flyte-infra render`: the manifests and build contexts a stack would deploy, written to files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..deploy.preflight import preflight
from ..deploy.promotion import promoted_ref
from ..deploy.settings import StackSettings
from ..errors import UsageError
from ..loader import Program
from .dockerfile import image_spec, write_build_context
from .manifests import environment_manifests, namespace_manifest

if TYPE_CHECKING:
    from ..packaging.lock import Lock

__all__ = ["render"]


def render(
    program: Program,
    settings: StackSettings,
    out_dir: Path,
    image_refs: Mapping[str, str] | None = None,
    refs_source: str = "the given images",
    *,
    lock: Lock,
) -> list[Path]:
    """Write `<out>/namespace.yaml`, `<out>/<env>/manifests.yaml` and `<out>/images/<tag>/` contexts.

    Everything is computed before anything is written, so a preflight error (or any other) leaves
    `out_dir` untouched. The files written are listed in `<out>/.flyte-infra-render`; a render into
    a directory that a render wrote before removes that render's files it does not write again (an
    environment removed from the program, an image no longer used), so `kubectl apply -R` never
    deploys a removed environment. A non-empty directory without that list is refused.

    Images are referenced by digest when the refs are known (`image_refs`, e.g.
    from `flyte-infra build`, else the stack's `images`), each checked to be the image of the
    environment's current spec (errors name `refs_source`, where the refs came from); otherwise by
    the spec's tag, which a comment in the file points out. Returns the written files, each once.
    The contexts hold no wheels (`flyte-infra build` adds them from `lock`'s pins).
    """
    graph = preflight(program.environments).raise_for_errors()
    settings.check_environments(graph.environments)
    known = dict(image_refs or settings.images)
    source = refs_source if image_refs else f"stack '{settings.stack}' (flyte-infra:images)"
    specs = {name: image_spec(graph.environments[name], program, settings, lock) for name in graph.order}
    documents: dict[Path, tuple[str, list[dict[str, Any]]]] = {
        out_dir / "namespace.yaml": ("", [namespace_manifest(settings)])
    }
    for name, spec in specs.items():
        image_ref = promoted_ref(known, name, spec.tag, source) if known else spec.image_name(settings)
        manifests = environment_manifests(graph.environments[name], graph, settings, image_ref)
        documents[out_dir / name / "manifests.yaml"] = ("" if "@sha256:" in image_ref else _BY_TAG, manifests)
    contexts = {spec.tag: spec for spec in specs.values()}  # identical specs share one image
    files = [path.relative_to(out_dir).as_posix() for path in documents]
    files += [f"images/{tag}/{relative}" for tag, spec in contexts.items() for relative in spec.files]
    stale = _previous_output(out_dir) - set(files)
    written = [_write_yaml(path, header, objects) for path, (header, objects) in documents.items()]
    for tag, spec in contexts.items():
        written.append(write_build_context(spec, out_dir / "images" / tag) / "Dockerfile")
    _remove(out_dir, stale)
    (out_dir / MARKER).write_text("".join(f"{relative}\n" for relative in sorted(files)))
    return written


MARKER = ".flyte-infra-render"
"""The list of files the last render wrote into a directory, one path a line (kubectl skips it)."""


def _previous_output(out_dir: Path) -> set[str]:
    """What the last render wrote into `out_dir`: to remove what this one does not write again. A
    directory that holds anything and no list is refused, so nothing of other origin is mixed in or
    deleted."""
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return set()
    marker = out_dir / MARKER
    if not marker.is_file():
        raise UsageError(
            f"render: {out_dir} is not empty and was not written by `flyte-infra render` (no {MARKER}); "
            "render into a new or empty directory",
            subject="render",
        )
    return {line for line in marker.read_text().splitlines() if line and ".." not in line.split("/")}


def _remove(out_dir: Path, stale: set[str]) -> None:
    """Delete the files of the last render that this one did not write (environments removed since,
    images no longer used), and the directories that leaves empty; nothing else."""
    for relative in sorted(stale):
        path = out_dir / relative
        if path.is_file() or path.is_symlink():
            path.unlink()
        for parent in path.parents:
            if parent == out_dir or not parent.is_relative_to(out_dir) or any(parent.iterdir()):
                break
            parent.rmdir()


_BY_TAG = (
    "# The image is referenced by tag: no digest is known before it is built and pushed. To pin\n"
    "# digests: `flyte-infra build ... -o refs.json`, then `flyte-infra render ... --images refs.json`.\n"
)


def _write_yaml(path: Path, header: str, documents: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump_all(documents, sort_keys=False))
    return path
