"""The journal protocol: the durable record of every item and every step.

The engine is the journal's only writer in a process.  Writes that only
record progress (`start`, `step_done`, `step_failed`) may be queued and
committed in groups; `admit`, `finish`, `retry`, `pause`, `resume` and
`set_cursor` return only once what they wrote is durable, so a source
disposes of an original only after its success is on disk (promise 1).

A backend shared by several instances (PostgreSQL) claims items with
``FOR UPDATE SKIP LOCKED`` under a lease (`owner`, `lease_until`): an item
whose lease expired belongs to nobody and is resumed by whoever claims it.
The engine `renew`s the leases of its running items well before they expire,
so a long step keeps its item; and on such a backend `step_done`,
`step_failed` and `finish` write only while the lease is still this
instance's, raising `LeaseLost` once another instance has taken the item over.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from ferryman.errors import JournalError
from ferryman.item import Candidate, Item, State, StepRun
from ferryman.journal.retention import PruneReport, Retention


class LeaseLost(JournalError):
    """A write for an item whose lease this instance lost: another instance took it over
    (its lease had expired), so the item's state is theirs and this write was not made.

    The engine drops the item without disposing of anything; the new owner finishes it.
    """


class Journal(Protocol):
    """What the engine, the sources and the command line need from a journal backend."""

    def admit(self, flow: str, candidates: Sequence[Candidate]) -> list[Item]:
        """Record new items for candidates whose key this flow has never seen; return them (pending).

        Candidates whose (flow, key) is already journaled, in any state, or was
        journaled and pruned (its tombstone), are left out: that is promise 2.
        Durable on return.
        """
        ...

    def known(self, flow: str, keys: Sequence[str]) -> set[str]:
        """Which of `keys` this flow has journaled already (any state, or pruned since)."""
        ...

    def claim(self, item_id: str, owner: str, lease: float) -> Item | None:
        """Mark a pending item running for `owner` until now + `lease` seconds and count an attempt.

        Returns the item as journaled (files and meta as of its last finished
        step), or None when another owner holds it or it is not pending.
        """
        ...

    def renew(self, item_ids: Sequence[str], owner: str, lease: float) -> set[str]:
        """Extend to now + `lease` seconds the leases `owner` holds on these running items,
        in one statement; return the ids renewed.

        An id missing from the answer is no longer `owner`'s (taken over after its lease
        expired, finished, or unknown).  The engine calls this for its running items every
        third of a lease or so, so that a step longer than the lease keeps its item.
        """
        ...

    def step_done(self, run: StepRun, files: Sequence[str], meta: dict[str, str]) -> None:
        """Record that step `run.index` finished; the item now carries `files` and `meta`.

        Attempts count per step: the next step is on its first attempt (1), and
        the item's error is cleared.

        May be committed later, in a group; a lost record only means the
        (idempotent) step runs again after a crash.

        On a backend shared by instances, raises `LeaseLost` (and records nothing) when
        the item is no longer held by the owner this journal claimed it for.
        """
        ...

    def step_failed(self, run: StepRun) -> None:
        """Record a failed run of a step (grouped, and checked against the lease, like `step_done`)."""
        ...

    def finish(self, item: Item, durable: bool = True) -> None:
        """Write the item's new state (`done`, `failed`, `skipped`, or `pending` with
        `next_attempt_at` for a retry), its error and attempts.  Durable on return, unless
        `durable` is False: the engine passes that when nothing is disposed of after it (the
        source keeps the original), where a lost record only means an idempotent re-run.

        On a backend shared by instances, raises `LeaseLost` (and writes nothing) when this
        journal claimed the item and the lease is no longer that owner's: a stale instance
        can neither overwrite the new owner's state nor go on to dispose of the original."""
        ...

    def claim_disposal(self, item_id: str, owner: str, lease: float) -> Item | None:
        """Hold the pending disposal of a finished item for `owner` until now + `lease` seconds
        (renewed by `renew` like a running item's lease); return the item, or None when the
        disposal is not pending or another owner's lease on it still runs.

        A `finish` with ``item.disposal == "pending"`` leaves the finishing owner holding the
        disposal (owner and lease kept), so only the instance that finished an item disposes of
        its original; another instance gets it here only once that lease expired.
        """
        ...

    def disposed(self, item_id: str, owner: str) -> bool:
        """Record the pending disposal done by `owner` (and release its lease); False when it
        is not `owner`'s.  May be committed with the next group: a lost record only means the
        disposal is tried again, and finds the original gone."""
        ...

    def undisposed(self, flows: Sequence[str]) -> list[Item]:
        """Finished items of `flows` whose disposal is pending under no live lease, oldest first."""
        ...

    def get(self, item_id: str) -> Item | None:
        """One item by id or by a unique id prefix."""
        ...

    def steps(self, item_id: str) -> list[StepRun]:
        """Every step run of an item, oldest first."""
        ...

    def unfinished(self, flows: Sequence[str]) -> list[Item]:
        """Items of these flows that are pending or running (after a crash: to resume), oldest first."""
        ...

    def history(
        self, flow: str | None = None, state: State | None = None, limit: int = 50
    ) -> list[Item]:
        """Items, newest first."""
        ...

    def find(self, flow: str, key: str) -> Item | None:
        """The item of a flow with this source key."""
        ...

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of items per flow and state."""
        ...

    def retry(self, item_ids: Sequence[str] = (), flow: str | None = None) -> list[str]:
        """Put failed items (by id or prefix, or every failed item of `flow`) back to pending,
        due now, attempts reset.  Returns the ids changed.  Durable on return."""
        ...

    def pause(self, flow: str, reason: str) -> None:
        """Pause a flow (stop_on_error); it stays paused across restarts until `resume`."""
        ...

    def resume(self, flow: str) -> bool:
        """Lift a pause; False when the flow was not paused."""
        ...

    def paused(self) -> dict[str, str]:
        """Paused flows and why."""
        ...

    def get_cursor(self, flow: str, name: str) -> str | None:
        """A source's saved position (an IMAP UIDVALIDITY/UID, a high-water id …)."""
        ...

    def set_cursor(self, flow: str, name: str, value: str) -> None:
        """Save a source's position.  Durable on return."""
        ...

    def prune(self, retention: Retention, dry_run: bool = False) -> PruneReport:
        """Remove the finished items `retention` allows, with their step runs, leaving tombstones
        for their keys (the rule: `ferryman.journal.retention`); durable on return.  With
        `dry_run`, count what would go and change nothing."""
        ...

    def export(self, before: float | None = None, flow: str | None = None
               ) -> Iterator[tuple[Item, list[StepRun]]]:
        """Every item (last updated before `before`, of `flow`) with its step runs, oldest first,
        read a batch at a time."""
        ...

    def size(self) -> int:
        """Bytes the journal takes on disk (SQLite: its files; PostgreSQL: its tables and indexes)."""
        ...

    def vacuum(self, full: bool = False) -> None:
        """Give the space of pruned rows back: SQLite rewrites the file (`full` changes nothing);
        PostgreSQL marks it reusable, and with `full` rewrites the tables (locking them meanwhile)."""
        ...

    def flush(self) -> None:
        """Wait until every queued write is durable."""
        ...

    def close(self) -> None:
        """Flush and release the journal."""
        ...
