"""``checksum``: write ``<name>.sha256`` (or ``.md5``) sidecar files next to the item's files.

A sidecar holds one line in the format ``sha256sum`` and ``md5sum`` read
(``<hex digest>  <file name>``), so ``sha256sum -c report.csv.sha256`` checks
the delivered file.  The item then carries its files plus their sidecars.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from ferryman.errors import PermanentError
from ferryman.item import Item
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.transports.local import os_errors

Algorithm = Literal["sha256", "md5"]


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """The hex digest of a local file, streamed in large blocks (constant memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sidecar_line(digest: str, name: str) -> str:
    """One line of a ``sha256sum``-style checksum file."""
    return f"{digest}  {name}\n"


class ChecksumConfig(StepConfig):
    """Add a checksum sidecar file for each of the item's files."""

    type: Literal["checksum"]
    algorithm: Algorithm = Field("sha256", description="Digest algorithm; also the sidecar's suffix.")
    include: list[str] | None = Field(None, description="Only files whose names match these globs (default: all).")


class ChecksumStep(Step[ChecksumConfig]):
    """Writes ``<name>.<algorithm>`` in the work folder for every selected file."""

    Config = ChecksumConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        algorithm = self.config.algorithm
        files = list(item.files)
        for path in ctx.files(self.config.include):
            sidecar = ctx.work_dir / f"{path.name}.{algorithm}"
            if sidecar in files:
                raise PermanentError(f"checksum: two files are named {path.name!r}; their sidecars would collide")
            with os_errors("cannot checksum"):
                digest = file_digest(path, algorithm)
                sidecar.write_text(sidecar_line(digest, path.name), encoding="utf-8")
            files.append(sidecar)
        return StepResult(files=files, outputs={"checksums": len(files) - len(item.files)})
