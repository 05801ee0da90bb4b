"""``rename``: give the item's files new names from a template (copy-on-write, no data copied)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from ferryman import templates
from ferryman.errors import PermanentError
from ferryman.item import Item
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.transports.local import os_errors


class RenameConfig(StepConfig):
    """New file names for the next steps (the originals are not touched)."""

    type: Literal["rename"]
    name: templates.Template = Field(description="New name template, e.g. '{meta.export_type}_{now:%Y%m%d}{suffix}'.")
    include: list[str] | None = Field(None, description="Only rename files whose names match these globs.")


class RenameStep(Step[RenameConfig]):
    """Links (or copies, across file systems) each file under its new name in the work folder."""

    Config = RenameConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        renamed: list[Path] = []
        selected = set(ctx.files(self.config.include))
        for path in item.files:
            if path not in selected:
                renamed.append(path)
                continue
            name = templates.render_name(self.config.name, ctx.values(path))
            target = ctx.work_dir / name
            if target in renamed:
                raise PermanentError(f"two files would both be named {name!r}")
            with os_errors("cannot rename"):
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copyfile(path, target)
            renamed.append(target)
        return StepResult(files=renamed)
