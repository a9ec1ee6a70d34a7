"""Promotion: a later stage deploys the images an earlier stage built, checked against today's spec."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import PromotionError

__all__ = ["promoted_ref"]


def promoted_ref(refs: Mapping[str, str], name: str, tag: str, source: str) -> str:
    """`refs[name]`, which must be pinned by digest and carry the tag of the environment's current spec.

    `source` says where `refs` came from (e.g. "stack 'dev'"). A different tag means the environment
    changed since its image was built: promotion never rebuilds, so the change must be built through
    the earlier stage first.
    """
    ref = refs.get(name)
    if ref is None:
        raise PromotionError(
            f"environment '{name}': {source} has no image for it; deploy it there first",
            source=source,
            environment=name,
        )
    if "@sha256:" not in ref:
        raise PromotionError(
            f"environment '{name}': '{ref}' from {source} is not pinned by digest",
            source=source,
            environment=name,
        )
    published_tag = ref.split("@", 1)[0].rsplit(":", 1)[-1]
    if published_tag != tag:
        raise PromotionError(
            f"environment '{name}': its image spec changed since the image in {source} was built "
            f"(now {tag}, there {published_tag}); build it through the earlier stage first: "
            "promotion never rebuilds",
            source=source,
            environment=name,
        )
    return ref
