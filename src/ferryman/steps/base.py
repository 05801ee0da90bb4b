"""What every step is: a config model and an idempotent ``run(item, ctx)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field

from ferryman import templates
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.model import Model
from ferryman.retry import RetryConfig
from ferryman.units import Duration


class StepConfig(Model):
    """Keys every step takes besides its own."""

    type: str
    label: str | None = Field(None, description="A name for this step in logs and `show` (default: the type).")
    retry: RetryConfig | None = Field(None, description="Retry policy for this step (default: the flow's).")
    timeout: Duration | None = Field(None, description="Fail the attempt (and maybe retry) past this time.")

    @property
    def title(self) -> str:
        """How logs, the journal and `show` name this step."""
        return self.label or self.type


class StepContext:
    """One attempt of one step on one item.

    `work_dir` is a fresh, empty folder for this attempt's output inside the
    item's work folder (created on first use: a step that only delivers never
    makes one); files the step writes there may become the item's files.
    Steps never modify the files the item carries in place.  `attempt` is 1 on
    the step's first attempt for this item and more after failures or a crash.
    """

    def __init__(self, flow: FlowContext, item: Item, index: int, work_dir: Path, attempt: int = 1,
                 deadline: float | None = None, now: datetime | None = None) -> None:
        self.flow = flow
        self.item = item
        self.index = index
        self.work_path = work_dir
        self.work_path_made = False
        self.attempt = attempt
        self.deadline = deadline
        """`time.monotonic()` value past which the step should give up (None: no limit)."""
        self.now = now or datetime.now()

    @property
    def work_dir(self) -> Path:
        if not self.work_path_made:
            self.work_path.mkdir(parents=True, exist_ok=True)
            self.work_path_made = True
        return self.work_path

    def values(self, path: Path | str | None = None, **extra: Any) -> dict[str, Any]:
        """Template variables for one of the item's files (or for the item when `path` is None).

        Meta keys written ``KEY@NAME`` belong to the file called NAME: for that file
        they are also visible as ``{meta.KEY}`` (the `meta` step sets them per file).
        """
        meta = self.item.meta
        if path is not None:
            suffix = "@" + Path(path).name
            own = {k[: -len(suffix)]: v for k, v in meta.items() if k.endswith(suffix)}
            if own:
                meta = {**meta, **own}
        return templates.fields_for(
            flow=self.flow.flow, item=self.item.id, meta=meta, path=path, now=self.now, **extra
        )

    def files(self, include: list[str] | None = None) -> Iterator[Path]:
        """The item's files whose names match any of `include` (all when None)."""
        from fnmatch import fnmatch

        for path in self.item.files:
            if include is None or any(fnmatch(path.name, pattern) for pattern in include):
                yield path


@dataclass
class StepResult:
    """What a step changed: new `files` (None keeps the current ones), `meta` to merge,
    and `outputs` to journal (where files were delivered, counts …)."""

    files: list[Path] | None = None
    meta: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None
    """End the item here, as skipped with this reason: nothing is left to do (a download that has
    not changed since the last one).  The rest of the steps do not run."""


C = TypeVar("C", bound=StepConfig)


class Step(ABC, Generic[C]):
    """A step of a flow, built once per flow from its config.

    ``run`` must be safe to call again on the same item after a crash: the
    engine journals a step's completion after it returns, so a crash between
    the two runs it twice.
    """

    Config: ClassVar[type[StepConfig]]

    def __init__(self, config: C, flow: FlowContext) -> None:
        self.config = config
        self.flow = flow

    @abstractmethod
    def run(self, item: Item, ctx: StepContext) -> StepResult | None:
        """Do the step for one item; raise `TransientError`/`PermanentError` on failure."""

    def close(self) -> None:
        """Release what the step holds (connections, instances); called when the flow stops."""
