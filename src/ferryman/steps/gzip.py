"""``gzip``: compress each of the item's files to ``<name>.gz`` (streamed, constant memory)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from ferryman import templates
from ferryman.errors import PermanentError
from ferryman.item import Item
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.transports.local import os_errors

BUFFER = 1 << 20


class GzipConfig(StepConfig):
    """Compress every selected file with gzip; the item then carries the ``.gz`` files."""

    type: Literal["gzip"]
    name: templates.Template = Field(
        "{name}.gz", description="Name template of each compressed file, e.g. '{stem}_{now:%Y%m%d}.csv.gz'."
    )
    level: int = Field(6, ge=0, le=9, description="Compression level: 1 fastest … 9 smallest (0 stores).")
    include: list[str] | None = Field(
        None, description="Only files whose names match these globs (others pass through)."
    )


class GzipStep(Step[GzipConfig]):
    """Writes one ``.gz`` per selected file in the work folder; the original name is stored in the header."""

    Config = GzipConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        selected = set(ctx.files(self.config.include))
        files: list[Path] = []
        for path in item.files:
            if path not in selected:
                files.append(path)
                continue
            name = templates.render_name(self.config.name, ctx.values(path))
            target = ctx.work_dir / name
            if target in files:
                raise PermanentError(f"gzip: two files would both be named {name!r}")
            # mtime=0 keeps the output identical on every attempt (idempotent, checksums stable)
            with (
                os_errors("gzip: cannot compress"),
                open(path, "rb") as src,
                open(target, "wb") as raw,
                gzip.GzipFile(filename=path.name, mode="wb", compresslevel=self.config.level,
                              fileobj=raw, mtime=0) as dst,
            ):
                shutil.copyfileobj(src, dst, BUFFER)
            files.append(target)
        return StepResult(files=files)
