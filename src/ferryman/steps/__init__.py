"""Steps by ``type``.  Adding one: a module here and a line in `STEPS`."""

from __future__ import annotations

from typing import Any

from ferryman.steps.base import Step, StepConfig, StepContext, StepResult

STEPS: dict[str, type[Step[Any]]] = {
}
"""Every step type, by its config ``type`` key."""

__all__ = ["STEPS", "Step", "StepConfig", "StepContext", "StepResult"]
