"""Retention: which finished items `Journal.prune` removes, and the SQL that removes them (shared by
every backend, run by `SqlJournal`).

The rule (docs/journal.md, "Retention"):

- `done` and `skipped` items last updated before `Retention.done_before` are removed, and `failed`
  ones only before `Retention.failed_before` (None: never).  `pending` and `running` items never.
- The newest `done` item of each flow stays, whatever its age: `expect`, `status` and the
  `download` step's ``if_changed`` read it.
- A removed item leaves a tombstone, the digest of its (flow, key) in ``pruned_keys``: admission
  treats the key as journaled, so an original still in its source (a folder with
  ``after = "keep"``, a mail left in the mailbox, a failed file kept by ``after_failure``) is
  never carried twice.  The one exception is a key its source's cursor already guards
  (`Retention.guarded`: a schedule tick, an ``expect`` window, before the flow's cursor): such a
  key is never offered again, so it leaves nothing.
- Cursors are never removed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ferryman.item import Item, StepRun
from ferryman.journal.rows import (
    ITEM_COLUMNS,
    STEP_COLUMNS,
    Cursor,
    chunks,
    item_from_row,
    key_digest,
    marks,
    step_run_from_row,
)

BATCH = 500
"""Items removed per transaction: a prune never holds the journal's write lock for long."""


@dataclass(frozen=True)
class Retention:
    """What `Journal.prune` may remove (times in epoch seconds)."""

    done_before: float | None
    """`done` and `skipped` items last updated before this (None: none of them)."""
    failed_before: float | None = None
    """`failed` items last updated before this (None: none of them; the default)."""
    guarded: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """(flow, key prefix) → the time up to which that source's cursor has moved: a key of the
    flow starting with the prefix, of an item created before that time, is never offered again
    and leaves no tombstone."""

    def needs_tombstone(self, flow: str, key: str, created_at: float) -> bool:
        return not any(flow == f and key.startswith(prefix) and created_at < upto
                       for (f, prefix), upto in self.guarded.items())


@dataclass
class PruneReport:
    """What a prune removed (or, in a dry run, would remove)."""

    items: dict[str, int] = field(default_factory=dict)
    """Items per state."""
    steps: int = 0
    """Step runs of those items."""
    tombstones: int = 0
    """Keys left behind as tombstones."""
    kept_newest: int = 0
    """Old enough, but kept as the newest done item of its flow."""

    @property
    def total(self) -> int:
        return sum(self.items.values())


Q = Callable[[str], str]
"""A shared statement (``?`` placeholders) in the backend's placeholder style."""


def _selection(retention: Retention, kept: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (and its parameters) of the items `retention` removes, but `kept`."""
    parts, params = [], []
    if retention.done_before is not None:
        parts.append("(state IN ('done', 'skipped') AND updated_at < ?)")
        params.append(retention.done_before)
    if retention.failed_before is not None:
        parts.append("(state = 'failed' AND updated_at < ?)")
        params.append(retention.failed_before)
    where = "(" + (" OR ".join(parts) or "1 = 0") + ")"
    if kept:
        where += f" AND id NOT IN ({marks(len(kept))})"
    return where, (*params, *kept)


def op_newest_done(cur: Cursor) -> list[str]:
    """The id of each flow's newest done item."""
    cur.execute("SELECT id FROM items WHERE seq IN "
                "(SELECT max(seq) FROM items WHERE state = 'done' GROUP BY flow)")
    return [row[0] for row in cur.fetchall()]


def op_prune_batch(cur: Cursor, q: Q, retention: Retention, kept: Sequence[str], now: float,
                   report: PruneReport) -> bool:
    """Remove up to `BATCH` items, their step runs, and leave their tombstones; False when none was left."""
    where, params = _selection(retention, kept)
    # The selection is checked again on each row deleted: an item that `ferryman retry` put back
    # to pending meanwhile stays (on PostgreSQL the DELETE re-reads a row changed under it).
    cur.execute(q(f"DELETE FROM items WHERE id IN (SELECT id FROM items WHERE {where} ORDER BY seq "
                  f"LIMIT {BATCH}) AND {where} RETURNING id, flow, key, state, created_at"),
                (*params, *params))
    rows = cur.fetchall()
    if not rows:
        return False
    for chunk in chunks([row[0] for row in rows]):
        cur.execute(q(f"DELETE FROM step_runs WHERE item_id IN ({marks(len(chunk))})"), tuple(chunk))
        report.steps += max(cur.rowcount, 0)
    for _, flow, key, state, created_at in rows:
        report.items[state] = report.items.get(state, 0) + 1
        if retention.needs_tombstone(flow, key, created_at):
            cur.execute(q("INSERT INTO pruned_keys (flow, key_digest, state, pruned_at) "
                          "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                        (flow, key_digest(flow, key), state, now))
            report.tombstones += 1
    return True


def op_count(cur: Cursor, q: Q, retention: Retention, kept: Sequence[str], report: PruneReport) -> None:
    """A dry run: what `op_prune_batch` would remove, counted without a write."""
    where, params = _selection(retention, kept)
    cur.execute(q(f"SELECT id, flow, key, state, created_at FROM items WHERE {where}"), params)
    while True:
        rows = cur.fetchmany(BATCH)
        if not rows:
            break
        for _, flow, key, state, created_at in rows:
            report.items[state] = report.items.get(state, 0) + 1
            report.tombstones += retention.needs_tombstone(flow, key, created_at)
    cur.execute(q(f"SELECT count(*) FROM step_runs WHERE item_id IN (SELECT id FROM items WHERE {where})"),
                params)
    report.steps = int(cur.fetchone()[0])


def op_pruned(cur: Cursor, q: Q, flow: str, keys: Sequence[str]) -> set[str]:
    """Which of `keys` a prune of `flow` left a tombstone for."""
    digests = {key_digest(flow, key): key for key in keys}
    found: set[str] = set()
    for chunk in chunks(list(digests)):
        cur.execute(q(f"SELECT key_digest FROM pruned_keys WHERE flow = ? AND key_digest IN "
                      f"({marks(len(chunk))})"), (flow, *chunk))
        found.update(digests[row[0]] for row in cur.fetchall())
    return found


def op_export_batch(cur: Cursor, q: Q, after: int, before: float | None, flow: str | None
                    ) -> list[tuple[int, Item, list[StepRun]]]:
    """The next `BATCH` items after `seq` `after` (updated before `before`, of `flow`), with their steps."""
    where = ["seq > ?"]
    params: list[Any] = [after]
    if before is not None:
        where.append("updated_at < ?")
        params.append(before)
    if flow is not None:
        where.append("flow = ?")
        params.append(flow)
    cur.execute(q(f"SELECT seq, {ITEM_COLUMNS} FROM items WHERE {' AND '.join(where)} "
                  f"ORDER BY seq LIMIT {BATCH}"), tuple(params))
    items = [(row[0], item_from_row(row[1:])) for row in cur.fetchall()]
    runs: dict[str, list[StepRun]] = {item.id: [] for _, item in items}
    for chunk in chunks(list(runs)):
        cur.execute(q(f"SELECT {STEP_COLUMNS} FROM step_runs WHERE item_id IN ({marks(len(chunk))}) "
                      "ORDER BY seq"), tuple(chunk))
        for row in cur.fetchall():
            run = step_run_from_row(row)
            runs[run.item_id].append(run)
    return [(seq, item, runs[item.id]) for seq, item in items]


def exported(read: Callable[[Callable[[Cursor], Any]], Any], q: Q, before: float | None,
             flow: str | None) -> Iterator[tuple[Item, list[StepRun]]]:
    """Every item (updated before `before`, of `flow`) with its step runs, oldest first, read
    `BATCH` at a time: memory stays flat however large the journal."""
    after = 0
    while True:
        batch = read(functools.partial(op_export_batch, q=q, after=after, before=before, flow=flow))
        if not batch:
            return
        for _, item, runs in batch:
            yield item, runs
        after = batch[-1][0]
