"""The ``folder`` source's config: the model every part of the source reads.

At the bottom of the package: it imports nothing of the source's parts, they import it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ferryman.sources.base import FileSelection, MoveTo, Suffix
from ferryman.units import Duration

BUILTIN_META = ("name", "path", "dir", "relpath", "size", "mtime")
CURSOR = "folder.ignore_before"


class FolderSourceConfig(FileSelection):
    """Files in one or more folders, picked up when ready, disposed of after success."""

    BUILTIN_META = BUILTIN_META
    ABSOLUTE = ("/", "~")

    type: Literal["folder"] = Field(description="Files arriving in local or mounted folders.")
    path: str | None = Field(None, description="The folder to watch (relative to the config file).")
    paths: list[str] | None = Field(None, description="Several folders to watch (instead of path).")
    watch: Literal["auto", "poll"] = Field(
        "auto", description="'auto': inotify events plus a scan every rescan; 'poll': scans only "
        "(network shares whose changes inotify does not see).",
    )
    rescan: Duration = Field(
        60.0, gt=0, description="Reconciliation scan interval (the polling interval with watch = 'poll')."
    )
    ready: Literal["auto", "stable", "lock", "done_file"] = Field(
        "auto", description="When a file is complete: 'auto' (closed or renamed in, else unchanged for "
        "settle), 'stable' (unchanged for settle), 'lock' (no <file>.lock), 'done_file' "
        "(<file>.done exists).",
    )
    settle: Duration = Field(2.0, description="How long a file must stay unchanged to count as complete.")
    done_suffix: Suffix = Field(".done", description="Suffix of done files (ready = 'done_file').")
    lock_suffix: Suffix = Field(".lock", description="Suffix of lock files or folders (ready = 'lock').")
    existing: Literal["process", "ignore"] = Field(
        "process", description="Files already there when the flow first starts: 'process' them (oldest "
        "first) or 'ignore' them for good.",
    )
    after: Literal["keep", "delete"] | MoveTo = Field(
        "keep", description="After success: 'keep', 'delete' or {move = 'folder template'}."
    )
    after_failure: Literal["keep"] | MoveTo = Field(
        "keep", description="After a failure: 'keep' or {move = 'folder template'}."
    )

    @model_validator(mode="after")
    def _consistent(self) -> FolderSourceConfig:
        if (self.path is None) == (self.paths is None):
            raise ValueError("give either path or paths (exactly one)")
        if self.paths is not None and not self.paths:
            raise ValueError("paths is empty")
        return self

    @property
    def folders(self) -> list[str]:
        """`path` or `paths`, as written."""
        return [self.path] if self.path is not None else list(self.paths or ())
