"""Running one step on one item the way the engine does: a fresh work folder per attempt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from ferryman.config import AnyStep
from ferryman.flow import FlowContext
from ferryman.steps import STEPS, StepResult
from ferryman.transports import TransportPool

RunStep = Callable[..., StepResult]


def build_step(config: dict[str, Any], tmp: Path) -> Any:
    """A step object built from a raw config table, as `ferryman run` builds it."""
    model = TypeAdapter(AnyStep).validate_python(config)
    flow = FlowContext(flow="t", root=tmp / "root", config_dir=tmp, connections={},
                       transports=TransportPool({}), journal=None)  # type: ignore[arg-type]
    return STEPS[config["type"]](model, flow)



def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path → content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
