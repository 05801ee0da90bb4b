"""What every source is: it finds candidates, and disposes of originals after the journal."""

from __future__ import annotations

import posixpath
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, Field, field_validator, model_validator

from ferryman import templates
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.model import Model, NamedGroupsRegex
from ferryman.units import Duration

Emit = Callable[[list[Candidate]], None]
"""How a watching source hands ready candidates to the engine (in batches)."""


class SourceConfig(Model):
    """Keys every source takes besides its own."""

    type: str
    meta_from_name: NamedGroupsRegex | None = Field(
        None,
        description="Regex whose named groups become meta keys, matched against the file name "
        "(e.g. '(?P<to>.+)_(?P<db>[^_]+)\\.csv$'). A name that does not match is left alone.",
    )
    poll_interval: Duration = Field(60.0, description="How often to look for new items when polling.")



DEFAULT_IGNORE = ["*.in_progress", "*.part", "*.filepart", "*.tmp", "*.lock", "*.done"]
"""Names never picked up by default: other tools' (and ferryman's own) temporary and marker files."""


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


def _suffix(value: str) -> str:
    if not value or "/" in value:
        raise ValueError("a suffix must be non-empty and hold no '/'")
    return value


Suffix = Annotated[str, AfterValidator(_suffix)]
"""A file-name suffix such as ``.done`` or ``.lock``."""


class FileSelection(SourceConfig):
    """Which files a file source (folder, sftp, ftp, s3) takes.

    Subclasses name the meta keys they set themselves in `BUILTIN_META` (``meta_from_name`` may
    not reuse them); their ``after`` / ``after_failure`` dispositions are checked here too.
    """

    BUILTIN_META: ClassVar[tuple[str, ...]] = ()
    ABSOLUTE: ClassVar[tuple[str, ...]] = ("/",)
    """How an absolute move folder starts (a local one may also start with ``~``)."""

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

    @model_validator(mode="after")
    def _selection(self) -> FileSelection:
        if self.meta_from_name:
            clash = sorted(set(re.compile(self.meta_from_name).groupindex) & set(self.BUILTIN_META))
            if clash:
                raise ValueError(f"meta_from_name group {clash[0]!r} clashes with the built-in meta key "
                                 "of that name; rename the group")
        if self.recursive:
            for move in self.move_folders():
                if not move.startswith(self.ABSOLUTE) and not templates.static_prefix(move).strip("/."):
                    raise ValueError(
                        f"with recursive = true a relative move folder must start with a fixed folder "
                        f"(like 'archive/{{now:%Y-%m}}'), not {move!r}: moved files would be "
                        "picked up again")
        return self

    def move_folders(self) -> list[str]:
        """The ``{move = …}`` folder templates of ``after`` and ``after_failure`` (where the source has them)."""
        return [disposal.move for disposal in (getattr(self, "after", None), getattr(self, "after_failure", None))
                if isinstance(disposal, MoveTo)]


def folder_inside(root: str, move: str) -> str | None:
    """The folder that the fixed part of the move template `move` names, relative to the watched
    folder `root` when it lies below it (a folder never scanned: moved originals would come back)."""
    base = posixpath.normpath("/" + root.strip("/"))
    folder = posixpath.normpath(posixpath.join(base, templates.static_prefix(move)))
    below = base.rstrip("/") + "/"
    return folder[len(below):] if folder != base and folder.startswith(below) else None


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

    @property
    def serial(self) -> bool:
        """True when the flow's items must run one at a time, whatever its ``concurrency``
        (a schedule with ``overlap = "queue"``)."""
        return False

    @property
    def in_order(self) -> bool:
        """True when the flow's items must also end in arrival order: a later item waits while an
        earlier one waits for its retry (as with ``concurrency = 1``)."""
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
            self.flow.problems.clear(f"source {self.flow.flow}")
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
