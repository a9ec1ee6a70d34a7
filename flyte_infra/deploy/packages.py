"""Package coverage: does a parent environment's package list satisfy a child's?

Names are compared after PEP 503 normalisation; markers are evaluated for the image (Linux, and the
CPython its reference names, see `image_python`); version specifiers are compared as intervals with
`packaging`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = [
    "RUNTIME_REQUIREMENTS",
    "CoverageProblem",
    "PackageSet",
    "clear_caches",
    "coverage_problems",
    "image_python",
    "missing_coverage",
    "package_set",
    "runtime_conflicts",
]

DEFAULT_PYTHON = "3.11"
"""The CPython of an image whose reference does not name one: that of the default image,
python:3.11-slim-bookworm, and of the Debian bookworm base that scripts/services.sh builds."""

_LINUX: dict[str, str] = {
    **{key: str(value) for key, value in default_environment().items()},
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
_PYTHON_IMAGE = re.compile(r"(?:^|/)python:(?P<version>\d+\.\d+(?:\.\d+)?)(?=$|[-@])")


@lru_cache(maxsize=256)
def image_python(image: str) -> str:
    """The CPython version an image reference names (`python:3.12-slim` -> "3.12", `python:3.11.9`
    -> "3.11.9"), else DEFAULT_PYTHON. Markers are evaluated for it, not for the deploying Python."""
    match = _PYTHON_IMAGE.search(image)
    return match["version"] if match else DEFAULT_PYTHON


@lru_cache(maxsize=32)
def _target_environment(python: str) -> dict[str, str]:
    """The marker environment of a Linux image running CPython `python` ("3.11" is taken as 3.11.0)."""
    release = python.split(".")
    full_version = python if len(release) > 2 else f"{python}.0"
    return {
        **_LINUX,
        "python_version": ".".join(release[:2]),
        "python_full_version": full_version,
        "implementation_version": full_version,
    }


@dataclass(frozen=True)
class CoverageProblem:
    """One child requirement the parent does not satisfy."""

    severity: str  # "error" | "warning"
    package: str
    problem: str
    fix: str


@lru_cache(maxsize=8192)
def _applicable(text: str, python: str) -> tuple[str, Requirement] | None:
    """(normalised name, requirement without its marker), or None when the marker excludes an
    image running CPython `python`.

    Memoised: programs repeat the same lines across environments (a parent carries its children's
    pins). The requirement returned is shared, so callers never change it."""
    requirement = Requirement(text)
    if requirement.marker is not None and not requirement.marker.evaluate(_target_environment(python)):
        return None
    requirement.marker = None
    return canonicalize_name(requirement.name), requirement


Line = str | tuple[str, ...]
"""A requirement as written: one line, or the lines that name the same package (merged)."""


@dataclass(frozen=True)
class PackageSet:
    """The packages that apply on the image's platform: one `Line` per normalised name."""

    lines: dict[str, Line]
    values: frozenset[str]
    """Every line as written, whether its marker applies or not: a parent that has all of a
    child's lines verbatim installs what the child needs on any Python."""
    requirements: dict[str, Requirement]
    """Each line parsed, without its marker (merged where several lines name one package)."""
    python: str
    """The CPython version the markers were evaluated for."""


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^/?#\s@]*)@")
"""A URL's `userinfo@`: `https://user:token@host/`, `git+https://TOKEN@github.com/`."""


def masked(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`, shown on one line."""
    return _URL_CREDENTIALS.sub(lambda match: f"{match['scheme']}://***@", text)


def _credentials_problem(text: str) -> str | None:
    """Why `text` must not be installed as written: a URL in it carries credentials, which would be
    baked into the Dockerfile and the image history. A bare ssh user (`git+ssh://git@host/...`)
    is a login name, not a secret: the key is elsewhere."""
    for match in _URL_CREDENTIALS.finditer(text):
        if ":" in match["userinfo"] or "ssh" not in match["scheme"].lower():
            return (
                f"{masked(text)!r} has credentials in its URL; they would be written into the Dockerfile "
                "and the image history: configure the index at build time (PIP_INDEX_URL from a build "
                "secret, or a pip.conf secret) and name the package without them"
            )
    return None


def package_set(packages: Sequence[str], python: str = DEFAULT_PYTHON) -> PackageSet:
    """Parse `packages` for an image running CPython `python`; ValueError names the first line that
    is not a PEP 508 requirement, or two lines of one package that contradict each other (no
    version satisfies both, or they name different URLs)."""
    if not isinstance(packages, (list, tuple)):
        raise ValueError(f"expected a list of PEP 508 requirements, got {type(packages).__name__}")
    texts = tuple(packages)
    try:
        return _parsed(texts, python)
    except TypeError:  # a line that cannot be hashed, so no string
        _check_strings(texts)
        raise


def _check_strings(packages: Sequence[object]) -> None:
    for index, text in enumerate(packages):
        if not isinstance(text, str):
            raise ValueError(f"[{index}] {text!r} is not a PEP 508 requirement: not a string")


@lru_cache(maxsize=4096)
def _parsed(texts: tuple[str, ...], python: str) -> PackageSet:
    """`package_set` of a tuple of lines. Memoised: environments repeat their lists (a parent
    carries its children's lines, clones keep them); the result is shared, so callers never change it."""
    _check_strings(texts)
    packages = [str.__str__(text) for text in texts]  # the text itself: a subclass's str() may differ
    parsed: list[tuple[str, str, Requirement]] = []
    for index, text in enumerate(packages):
        if problem := _credentials_problem(text):
            raise ValueError(f"[{index}] {problem}")
        try:
            applicable = _applicable(text, python)
        except InvalidRequirement as error:
            reason = masked(str(error).splitlines()[0])
            hint = "; pip options are not accepted, the index is configured at build time" * text.startswith(
                "-"
            )
            raise ValueError(
                f"[{index}] {masked(text)!r} is not a PEP 508 requirement: {reason}{hint}"
            ) from None
        if applicable is not None:
            parsed.append((applicable[0], text, applicable[1]))
    lines: dict[str, Line] = {name: text for name, text, _ in parsed}
    requirements = {name: requirement for name, _, requirement in parsed}
    if len(lines) < len(parsed):  # several lines for one package: merge them
        for name in lines:
            same = [(text, requirement) for other, text, requirement in parsed if other == name]
            if len(same) > 1:
                lines[name] = tuple(text for text, _ in same)
                requirements[name] = _merged(packages, same)
    return PackageSet(lines, frozenset(packages), requirements, python)


def _merged(packages: Sequence[str], same: list[tuple[str, Requirement]]) -> Requirement:
    """One requirement for several lines naming the same package (specifiers and extras combined);
    ValueError when no version satisfies them all, or two lines name different URLs, as pip would
    find."""
    combined = Requirement(str(same[0][1]))  # a fresh object: memoised ones are shared
    for count, (text, requirement) in enumerate(same[1:], start=1):
        combined.specifier &= requirement.specifier
        if _unsatisfiable(combined.specifier):
            reason = "no version satisfies them together"
        elif combined.url and requirement.url and combined.url != requirement.url:
            reason = "they name different URLs"
        else:
            combined.extras |= requirement.extras
            combined.url = combined.url or requirement.url
            continue
        earlier = " and ".join(repr(line) for line, _ in same[:count])
        raise ValueError(f"[{packages.index(text)}] {text!r} contradicts {earlier}: {reason}")
    return combined


def coverage_problems(
    parent: Sequence[str], child: Sequence[str], python: str = DEFAULT_PYTHON
) -> list[CoverageProblem]:
    """Why the `parent` package list does not cover the `child` one in an image running CPython
    `python` (empty when it does)."""
    return missing_coverage(package_set(parent, python), package_set(child, python))


def missing_coverage(have: PackageSet, need: PackageSet) -> list[CoverageProblem]:
    """`coverage_problems` for parsed package sets, in the order of the child's packages."""
    problems: list[CoverageProblem] = []
    if need.values <= have.values:  # every child line verbatim in the parent covers itself
        return problems
    for name, line in need.lines.items():
        if have.lines.get(name) != line:  # a line present on both sides covers itself
            problems.extend(_compare(name, have.requirements.get(name), need.requirements[name]))
    return problems


RUNTIME_REQUIREMENTS = (
    "pydantic>=2.6,<3",
    "packaging>=24",
    "pyyaml>=6",
    "uvicorn>=0.30,<1",
    "h11>=0.16",
    "httpx>=0.27,<1",
)
"""What the worker needs beside the standard library to import flyte_infra and serve: pyyaml (a
module's `flyte.Image.from_ref_name` reads Flyte's config when the worker imports it), uvicorn on h11
(0.16 fixes a chunked-body smuggling bug, CVE-2025-43859) and httpx for calls between workers. The
project's own `dependencies` list each of them (a test keeps the two in step)."""
_RUNTIME = package_set(RUNTIME_REQUIREMENTS)


def runtime_conflicts(packages: PackageSet) -> list[CoverageProblem]:
    """Packages pinned or bounded to versions the worker runtime cannot run with.

    An image installs RUNTIME_REQUIREMENTS, then the environment's packages, which would replace
    them; a range that overlaps the runtime's is left to pip, which resolves both together.
    """
    problems = []
    for name, needed in _RUNTIME.requirements.items():
        present = packages.requirements.get(name)
        if present is None or present.url:
            continue
        problem = _specifier_problem(name, present.specifier, needed.specifier, "the worker runtime's")
        if problem is not None and problem.severity == "error":
            problems.append(problem)
    return problems


def clear_caches() -> None:
    """Forget the memoised requirement parses (to measure a program's first check)."""
    _applicable.cache_clear()


def _compare(name: str, present: Requirement | None, needed: Requirement) -> tuple[CoverageProblem, ...]:
    if present is None:
        return (CoverageProblem("error", name, f"missing (needs '{needed}')", f"add '{needed}'"),)
    problems = []
    missing_extras = _extras(needed) - _extras(present)
    if missing_extras:
        extras = ",".join(sorted(_extras(present) | missing_extras))
        lacking = ", ".join(sorted(missing_extras))
        problems.append(
            CoverageProblem(
                "error",
                name,
                f"has '{present}' without extra(s) {lacking} (needs '{needed}')",
                f"use '{name}[{extras}]{present.specifier}'",
            )
        )
    if needed.url and needed.url != present.url:
        problems.append(
            CoverageProblem("error", name, f"has '{present}', needs '{needed}'", f"use '{needed}'")
        )
        return tuple(problems)
    problem = _specifier_problem(name, present.specifier, needed.specifier)
    if problem is not None:
        problems.append(problem)
    return tuple(problems)


def _extras(requirement: Requirement) -> set[str]:
    """Extras compare normalised (PEP 685): `SOCKS` and `socks`, `a_b` and `a-b` are the same."""
    return {canonicalize_name(extra) for extra in requirement.extras}


def _specifier_problem(
    name: str, have: SpecifierSet, need: SpecifierSet, whose: str = "the dependency's"
) -> CoverageProblem | None:
    if not need:
        return None
    pin = _pinned_version(have)
    if pin is not None:
        if need.contains(pin, prereleases=True):
            return None
        return CoverageProblem(
            "error",
            name,
            f"pinned to {have}, which {whose} '{name}{need}' rejects",
            f"pin a version that satisfies '{need}'",
        )
    have_range, need_range = _Range.of(have), _Range.of(need)
    if have_range is None or need_range is None:
        return None  # a specifier the interval model cannot express: packaging checks the pin case only
    if have_range.intersect(need_range).is_empty():
        return CoverageProblem(
            "error",
            name,
            f"'{name}{have}' and {whose} '{name}{need}' have no version in common",
            f"require '{name}{need}'",
        )
    if not have_range.within(need_range):
        return CoverageProblem(
            "warning",
            name,
            f"'{name}{have}' admits versions {whose} '{name}{need}' rejects",
            f"narrow it to '{name}{need}' or pin a version",
        )
    return None


def _unsatisfiable(specifiers: SpecifierSet) -> bool:
    """No version meets every clause (as far as a pin, or the intervals, tell)."""
    pin = _pinned_version(specifiers)
    if pin is not None:
        return not specifiers.contains(pin, prereleases=True)
    interval = _Range.of(specifiers)
    return interval is not None and interval.is_empty()


def _pinned_version(specifiers: SpecifierSet) -> Version | None:
    for specifier in specifiers:
        if specifier.operator in ("==", "===") and not specifier.version.endswith(".*"):
            try:
                return Version(specifier.version)
            except InvalidVersion:
                return None
    return None


Bound = tuple[Version, bool]  # (version, inclusive)


@dataclass(frozen=True)
class _Range:
    """An interval of versions: `lower`/`upper` are None when unbounded."""

    lower: Bound | None = None
    upper: Bound | None = None

    @classmethod
    def of(cls, specifiers: SpecifierSet) -> _Range | None:
        result = cls()
        for specifier in specifiers:
            piece = cls._of_one(specifier)
            if piece is None:
                if specifier.operator == "!=":
                    continue  # a hole: it narrows the range by one version, which ranges ignore
                return None
            result = result.intersect(piece)
        return result

    @classmethod
    def _of_one(cls, specifier: Specifier) -> _Range | None:
        operator, text = specifier.operator, specifier.version
        try:
            if text.endswith(".*"):
                prefix = Version(text[:-2])
                if operator != "==":
                    return None
                return cls((prefix, True), (_bump(prefix.release, len(prefix.release) - 1), False))
            version = Version(text)
        except InvalidVersion:
            return None
        if operator == ">=":
            return cls(lower=(version, True))
        if operator == ">":
            return cls(lower=(version, False))
        if operator == "<=":
            return cls(upper=(version, True))
        if operator == "<":
            return cls(upper=(version, False))
        if operator in ("==", "==="):
            return cls((version, True), (version, True))
        if operator == "~=":
            return cls((version, True), (_bump(version.release, len(version.release) - 2), False))
        return None

    def intersect(self, other: _Range) -> _Range:
        return _Range(
            _tighter(self.lower, other.lower, lower=True), _tighter(self.upper, other.upper, lower=False)
        )

    def is_empty(self) -> bool:
        if self.lower is None or self.upper is None:
            return False
        (low, low_inclusive), (high, high_inclusive) = self.lower, self.upper
        return low > high or (low == high and not (low_inclusive and high_inclusive))

    def within(self, other: _Range) -> bool:
        return self.intersect(other) == self


def _tighter(first: Bound | None, second: Bound | None, *, lower: bool) -> Bound | None:
    if first is None or second is None:
        return first or second
    if first[0] != second[0]:
        pick_first = first[0] > second[0] if lower else first[0] < second[0]
        return first if pick_first else second
    return (first[0], first[1] and second[1])


def _bump(release: tuple[int, ...], index: int) -> Version:
    """The first version past a release prefix: _bump((1, 4, 2), 1) -> 1.5."""
    index = max(index, 0)
    parts = list(release[: index + 1])
    parts[index] += 1
    return Version(".".join(map(str, parts)) + ".dev0")
