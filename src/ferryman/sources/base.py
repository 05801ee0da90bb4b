"""What every source is: it finds candidates, and disposes of originals after the journal."""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field, field_validator

from ferryman import templates
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.model import Model
from ferryman.units import Duration

Emit = Callable[[list[Candidate]], None]
"""How a watching source hands ready candidates to the engine (in batches)."""


class SourceConfig(Model):
    """Keys every source takes besides its own."""

    type: str
    meta_from_name: str | None = Field(
        None,
        description="Regex whose named groups become meta keys, matched against the file name "
        "(e.g. '(?P<to>.+)_(?P<db>[^_]+)\\.csv$'). A name that does not match is left alone.",
    )
    poll_interval: Duration = Field(60.0, description="How often to look for new items when polling.")

    @field_validator("meta_from_name")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regex: {exc}") from None
            if not pattern.groupindex:
                raise ValueError("the regex has no named groups like (?P<to>…)")
        return value


DEFAULT_IGNORE = ["*.in_progress", "*.part", "*.filepart", "*.tmp", "*.lock", "*.done"]
"""Names never picked up by default: other tools' (and ferryman's own) temporary and marker files."""


class FileSelection(SourceConfig):
    """Which files a file source (folder, sftp, ftp, s3) takes."""

    include: list[str] = Field(
        default_factory=list,
        description="Globs a file must match (on its name, or with recursive on its path relative to "
        "the watched folder); empty takes every file. Case-sensitive.",
    )
    exclude: list[str] = Field(default_factory=list, description="Globs of files to leave alone.")
    ignore: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IGNORE),
        description="Temporary and marker files never picked up (replace the list to change it).",
    )
    ignore_hidden: bool = Field(True, description="Leave hidden files (and files in hidden folders) alone.")
    recursive: bool = Field(False, description="Also look in sub-folders.")


class MoveTo(Model):
    """``{move = "archive/{now:%Y-%m}"}``: after the item, move the original into a folder."""

    move: str = Field(
        description="Destination folder template ({now:%Y-%m}, {name}, {meta.KEY}, …), relative to the "
        "watched folder or remote path unless absolute. Created when missing; an existing file there is "
        "never overwritten (the moved file gets a -1, -2 … suffix)."
    )

    @field_validator("move")
    @classmethod
    def _template(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the move folder is empty")
        templates.check(value)
        return value


C = TypeVar("C", bound=SourceConfig)


class Source(ABC, Generic[C]):
    """A source of one flow.

    ``scan`` returns every candidate ready now (used by ``run --once`` and by
    the default ``watch`` loop).  The engine drops candidates whose key the
    journal knows, so a source may offer the same candidate many times.
    ``finalize`` runs only after the journal committed the item's outcome.
    """

    Config: ClassVar[type[SourceConfig]]

    implicit_steps: ClassVar[tuple[dict[str, Any], ...]] = ()
    """Step configs (as in the TOML, e.g. ``{"type": "fetch"}``) that the engine runs before the
    flow's own steps.  A remote source's candidates carry no files, only where they are
    (``meta.remote_url``); its built-in ``fetch`` step downloads them into the work folder."""

    @property
    def disposes(self) -> bool:
        """True when `finalize` does something (move, delete): the engine then re-runs it, idempotently,
        for an original offered again after its item ended (a crash cut the first finalize short)."""
        return False

    def __init__(self, config: C, flow: FlowContext) -> None:
        self.config = config
        self.flow = flow
        self._name_pattern = re.compile(config.meta_from_name) if config.meta_from_name else None

    @abstractmethod
    def scan(self) -> Iterable[Candidate]:
        """Every candidate that is ready now."""

    def watch(self, emit: Emit, stop: threading.Event) -> None:
        """Offer candidates until `stop` is set.  The default polls `scan` every `poll_interval`."""
        while not stop.is_set():
            found = list(self.scan())
            if found:
                emit(found)
            stop.wait(self.config.poll_interval)

    def finalize(self, item: Item, outcome: Outcome) -> None:
        """Dispose of the original after the journal committed `outcome` (default: keep it)."""

    def waiting(self) -> bool:
        """True while the source has seen originals that are not ready yet (a file settling):
        ``--exit-when-idle`` does not count that time as idle."""
        return False

    def explain(self, path: str) -> str | None:
        """Why `path` is or is not picked up by this source (None when it is not this source's)."""
        return None

    def close(self) -> None:
        """Release connections and watchers."""

    def meta_from_name(self, name: str) -> dict[str, str] | None:
        """Meta parsed from a name with `meta_from_name`: {} without a pattern, None when it does not match."""
        if self._name_pattern is None:
            return {}
        match = self._name_pattern.search(name)
        if match is None:
            return None
        return {k: v for k, v in match.groupdict().items() if v is not None}
