"""The base of every config section: unknown keys are errors."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Model(BaseModel):
    """A config section. Unknown keys are refused (the error suggests the closest valid key)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _named_groups(value: str) -> str:
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regex: {exc}") from None
    if not pattern.groupindex:
        raise ValueError("the regex has no named groups like (?P<name>…)")
    return value


NamedGroupsRegex = Annotated[str, AfterValidator(_named_groups)]
"""A regex whose named groups become meta keys (``'(?P<to>.+)_(?P<db>[^_]+)\\.csv$'``)."""
