"""Steps by ``type``.  Adding one: a module here and a line in `STEPS`."""

from __future__ import annotations

from typing import Any

from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.steps.deliver import DeliverStep
from ferryman.steps.rename import RenameStep

STEPS: dict[str, type[Step[Any]]] = {
    "deliver": DeliverStep,
    "rename": RenameStep,
}
"""Every step type, by its config ``type`` key."""

__all__ = ["STEPS", "Step", "StepConfig", "StepContext", "StepResult"]
