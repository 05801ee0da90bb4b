"""``gunzip``: decompress ``.gz`` files (``x.csv.gz`` → ``x.csv``, ``x.tar.gz`` → ``x.tar``), safely.

The same step as ``unzip`` with every selected file read as gzip: the same
``max_size``/``max_ratio`` limits stop a gzip bomb before it fills the disk.  It takes
only the keys that mean something for a gzip file (`ExtractConfig`): no password, member
count or nesting, which are zip and tar matters.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ferryman.steps.unzip import ExtractConfig, UnzipStep


class GunzipConfig(ExtractConfig):
    """Decompress gzip files; other files pass through unchanged."""

    type: Literal["gunzip"]
    include: list[str] = Field(
        default_factory=lambda: ["*.gz", "*.tgz"], description="Which of the item's files to decompress (globs)."
    )


class GunzipStep(UnzipStep):
    """Decompresses each selected file as gzip into the work folder."""

    Config = GunzipConfig
    force = "gz"
