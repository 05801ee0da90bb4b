"""The base of every config section: unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A config section. Unknown keys are refused (the error suggests the closest valid key)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
