"""Fixtures for step tests."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryman.item import Item
from ferryman.steps import StepContext, StepResult
from steps.harness import RunStep, build_step
from support import unavailable


@pytest.fixture
def run_step(tmp_path: Path) -> RunStep:
    """``run_step(config, files, meta=None, step=None)`` runs the step once in a fresh work folder."""
    counter = itertools.count(1)

    def run(config: dict[str, Any], files: list[Path], meta: dict[str, str] | None = None,
            step: Any = None) -> StepResult:
        step = step or build_step(config, tmp_path)
        work = tmp_path / "root" / "work" / "item1" / f"attempt{next(counter)}"
        work.mkdir(parents=True)
        item = Item(id="item1", flow="t", key="k", origin="test", meta=dict(meta or {}), files=list(files))
        ctx = StepContext(flow=step.flow, item=item, index=0, work_dir=work)
        result = step.run(item, ctx)
        return result if result is not None else StepResult()

    return run


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs: a real ENOSPC."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
