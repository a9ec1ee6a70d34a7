"""Validation shared by the model: DNS-label names, and a pydantic base whose errors name the field."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ValidationError

from ..errors import InvalidSpecError


def describe_validation_error(error: ValidationError) -> tuple[str, str]:
    """The (field, problem) of the first error, e.g. ("resources.cpu", "'lots' is not a ...")."""
    first = error.errors(include_url=False)[0]
    field = ""
    for part in first["loc"]:
        if isinstance(part, int):
            field += f"[{part}]"
        elif not part.startswith("function-"):
            field += f".{part}" if field else part
    field = field or "value"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return field, message


DNS1123_LABEL_PATTERN = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
"""A DNS-1123 label (at most 63 characters), as a regular expression to compose others from."""
_DNS1123_LABEL = re.compile(DNS1123_LABEL_PATTERN)
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")


def dns1123_label(value: str) -> str:
    """`value` if it is a DNS-1123 label (namespace and most object names), else ValueError."""
    if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending "
            "with a letter or digit, at most 63 characters), e.g. 'train-gpu'"
        )
    return value


def dns1035_label(value: str) -> str:
    """`value` if it is a DNS-1035 label, as a Service name must be, else ValueError."""
    if len(value) > 63 or not _DNS1035_LABEL.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a DNS-1035 label (lower-case letters, digits and '-', starting with a letter "
            "and ending with a letter or digit, at most 63 characters; it names the environment's "
            "Kubernetes Service), e.g. 'train-gpu'"
        )
    return value


_FLYTE_NAME = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")
FLYTE_NAME_MAX = 253
"""The longest environment name accepted (the Flyte SDK sets none; a DNS subdomain's limit)."""


def flyte_name(value: str) -> str:
    """`value` if it is a Flyte environment name (`^[a-z0-9]+([_-][a-z0-9]+)*$`), else ValueError."""
    if not isinstance(value, str) or len(value) > FLYTE_NAME_MAX or not _FLYTE_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r:.100} is not an environment name (lower-case letters and digits, words joined by "
            f"single '_' or '-', at most {FLYTE_NAME_MAX} characters), e.g. 'train_gpu' or 'train-gpu'"
        )
    return value


def kubernetes_name(name: str) -> str:
    """The DNS-1035 label derived from a Flyte name: `_` becomes `-`, a leading digit gets an `env-`
    prefix, and a name longer than 63 characters is cut to 54 and given 8 hex digits of its hash.
    A name that already is a DNS-1035 label is its own Kubernetes name."""
    derived = name.replace("_", "-")
    if derived[:1].isdigit():
        derived = "env-" + derived
    if len(derived) > 63:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        derived = derived[:54].rstrip("-") + "-" + digest
    return dns1035_label(derived)


DNSLabel = Annotated[str, AfterValidator(dns1123_label)]
"""A Kubernetes namespace or object name."""

ServiceName = Annotated[str, AfterValidator(dns1035_label)]
"""A name that is also a Kubernetes Service's, so a DNS-1035 label."""

FlyteName = Annotated[str, AfterValidator(flyte_name)]
"""An environment's name as Flyte spells it; `kubernetes_name` derives its objects' names."""


class SpecModel(BaseModel):
    """A model whose construction errors name what was being built and the offending field."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            field, problem = describe_validation_error(error)
            raise self._spec_error(data, field, problem) from error

    @classmethod
    def _spec_owner(cls, data: dict[str, Any]) -> str:
        return cls.__name__

    @classmethod
    def _spec_error(cls, data: dict[str, Any], field: str, problem: str) -> InvalidSpecError:
        """The error for `problem` with `field` of the data given to the constructor."""
        return InvalidSpecError(cls._spec_owner(data), field, problem)


_REGISTRY = (
    r"(?:[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_IMAGE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_REGISTRY}/)?{_IMAGE_PATH}(?:/{_IMAGE_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@sha256:[0-9a-f]{64})?"
)
"""A container image reference as the distribution spec defines it: `[registry[:port]/]path[:tag][@digest]`.
Nothing else can reach a Dockerfile's FROM: no whitespace or newline, no `${...}`, no `--flag`."""


def image_reference(value: str) -> str:
    """`value` if it is an image reference; ValueError on one line (the value shown escaped) if not."""
    if not isinstance(value, str) or len(value) > 512 or not IMAGE_REFERENCE.fullmatch(value):
        raise ValueError(
            f"{value!r:.200} is not an image reference ([registry/]path[:tag][@sha256:digest], "
            "e.g. python:3.11-slim-bookworm)"
        )
    return value
