"""What the ``http`` source keeps per collection, as one cursor in the journal (durable on save).

- ``mark``: the high-water mark, the highest record id captured.  It moves in the same durable
  write that lists the batches holding the records below it, and that write happens only once
  those records are in an fsynced raw backup and an fsynced spool file: a record at or below the
  mark is never offered again, and never lost.
- ``window``: the batches (items) not finished with yet: in flight, failed (kept until a
  ``ferryman retry`` makes them succeed), or done but with acks (deletes) still to send.  A batch
  leaves the window once its records are acknowledged, or at once when nothing is to be deleted.
- ``etag`` / ``modified``: the validators of the last answer, and the request they belong to.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ferryman.journal.base import Journal
from ferryman.sources.http.parse import RecordId, order

PREFIX = "http:"
"""Cursor names: ``http:<collection>``."""


@dataclass
class Batch:
    """One item: records `first`..`last` of a collection, in the spool file `file`."""

    key: str
    first: RecordId
    last: RecordId
    count: int
    file: str
    raw: str
    polled_at: str
    deleteable: bool
    ack_failed: list[str] = field(default_factory=list)
    """Ids whose ack failed; retried at every poll (each raised one critical alert)."""

    def holds(self, value: RecordId) -> bool:
        return order(self.first) <= order(value) <= order(self.last)


@dataclass
class CollectionState:
    mark: RecordId | None = None
    window: list[Batch] = field(default_factory=list)
    etag: str | None = None
    modified: str | None = None
    validated: str | None = None
    """The request URL the validators belong to (the mark is in its query)."""

    def below_mark(self, value: RecordId) -> bool:
        return self.mark is not None and order(value) <= order(self.mark)

    def in_window(self, value: RecordId) -> Batch | None:
        return next((b for b in self.window if b.holds(value)), None)


def load(journal: Journal, flow: str, collection: str) -> CollectionState:
    raw = journal.get_cursor(flow, PREFIX + collection)
    if not raw:
        return CollectionState()
    data: dict[str, Any] = json.loads(raw)
    window = [Batch(**b) for b in data.pop("window", [])]
    return CollectionState(window=window, **data)


def save(journal: Journal, flow: str, collection: str, state: CollectionState) -> None:
    """Durable on return."""
    journal.set_cursor(flow, PREFIX + collection, json.dumps(asdict(state), separators=(",", ":")))
