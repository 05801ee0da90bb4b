"""Items: one unit of work travelling through a flow, and what sources hand to the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class State(StrEnum):
    """Where an item stands. `pending` includes a retry that is not due yet."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Candidate:
    """What a source found: a stable key, metadata, and the original files (never modified).

    `key` identifies the original for this flow forever: a key that succeeded
    once is never processed again.  `order` sorts candidates found together
    (the folder source uses the file's mtime, so the oldest goes first).
    """

    key: str
    files: tuple[Path, ...]
    meta: dict[str, str] = field(default_factory=dict)
    order: float = 0.0
    origin: str = ""
    """Human description of the original (a path, ``mail UID 42``); shown by status and history."""
    settled: tuple[State, str] | None = None
    """Journal the candidate as already ended (skipped or failed, with the reason) instead of
    running its steps: a schedule tick that was missed, or whose ``for_each`` values failed."""


@dataclass
class Item:
    """One unit of work as the engine carries it.

    `files` are the files the item carries now: first the originals (read
    only), then files that steps wrote in the item's work folder.  `step` is
    the index of the first step not yet done, so a resumed item starts there.
    """

    id: str
    flow: str
    key: str
    origin: str
    meta: dict[str, str]
    files: list[Path]
    state: State = State.PENDING
    step: int = 0
    attempts: int = 0
    error: str | None = None
    error_type: str | None = None
    next_attempt_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    disposal: str | None = None
    """None when nothing is disposed of after the item, ``pending`` from its `finish` until its
    owner moved or deleted the original, then ``done`` (see `Journal.claim_disposal`)."""


@dataclass(frozen=True)
class StepRun:
    """The journal's record of one run of one step on one item."""

    item_id: str
    index: int
    name: str
    started_at: float
    ended_at: float | None
    outcome: str
    """``done``, ``failed`` or ``retry``."""
    error: str | None = None
    outputs: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What happened to an item, given to `Source.finalize` after the journal committed it."""

    succeeded: bool
    error: str | None = None
