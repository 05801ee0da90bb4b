"""The SQL every journal backend shares: migrations and statements (rows, dialects and the
row <-> Item conversion are in `rows`).

`SqlJournal` implements each `Journal` method once, as SQL run on a DB-API
cursor.  A backend states its dialect as class attributes (huey's
BaseSqlStorage: placeholder style, column types, the row lock a claim takes)
and supplies three hooks: `_write` (run an operation and return once it is
applied, or durable), `_submit` (a write whose caller does not wait) and
`_read`.  SQLite funnels writes through one group-committing writer thread;
PostgreSQL runs each write in its own transaction.  A backend shared by
instances also answers `_holder`: the owner whose lease an item's writes must
still hold (SQLite, one process, checks nothing).

Operations (`_op_*`) run inside the backend's transaction and must not commit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

from ferryman.errors import JournalError
from ferryman.item import Candidate, Item, State, StepRun
from ferryman.journal.base import LeaseLost
from ferryman.journal.migrations import migrations
from ferryman.journal.retention import (
    PruneReport,
    Retention,
    exported,
    op_count,
    op_newest_done,
    op_prune_batch,
    op_pruned,
)
from ferryman.journal.rows import (
    ITEM_COLUMNS,
    STEP_COLUMNS,
    Cursor,
    Dialect,
    chunks,
    item_from_row,
    marks,
    new_item_id,
    step_run_from_row,
    to_json,
)

T = TypeVar("T")

_ID_PREFIX = re.compile(r"[0-9a-f]{1,12}")


class SqlJournal:
    """Every `Journal` method, written once in SQL; backends supply the dialect and the hooks."""

    dialect: ClassVar[Dialect]
    where: str = "journal"
    """Where the journal lives, for messages (a path or a database address without password)."""

    # -- backend hooks -------------------------------------------------------

    def _write(self, op: Callable[[Cursor], T], durable: bool) -> T:
        """Run a write in a transaction; return once applied (and committed if `durable`)."""
        raise NotImplementedError

    def _submit(self, op: Callable[[Cursor], object]) -> None:
        """Queue a write whose caller need not wait (may be committed later, in a group)."""
        raise NotImplementedError

    def _read(self, op: Callable[[Cursor], T]) -> T:
        """Run a read operation on committed data."""
        raise NotImplementedError

    def _holder(self, item_id: str) -> str | None:
        """The owner whose lease `step_done`, `step_failed` and `finish` of `item_id` must find
        still held, else they raise `LeaseLost`; None: write unchecked (the default)."""
        return None

    def _insert_items(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> set[str]:
        """Insert item rows, skipping any that conflict; return the ids inserted.

        One row at a time suits SQLite (no round trips); PostgreSQL overrides it.
        """
        inserted = set()
        for row in rows:
            cur.execute(self.q(self.INSERT_ITEM), row)
            if cur.rowcount == 1:
                inserted.add(row[0])
        return inserted

    # -- statements ----------------------------------------------------------

    INSERT_ITEM = (
        "INSERT INTO items (id, flow, key, origin, meta, files, state, step, attempts, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 0, ?, ?) "
        "ON CONFLICT DO NOTHING"
    )

    def q(self, sql: str) -> str:
        """A shared statement in this backend's placeholder style."""
        mark = self.dialect.placeholder
        return sql if mark == "?" else sql.replace("?", mark)

    def _apply_migrations(self, cur: Cursor) -> None:
        """Bring the schema up to date; the backend holds an exclusive lock around this call."""
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            f"(version INTEGER PRIMARY KEY, applied_at {self.dialect.real} NOT NULL)"
        )
        cur.execute("SELECT max(version) FROM schema_version")
        current = cur.fetchone()[0] or 0
        known = migrations()
        latest = known[-1].version if known else 0
        if current > latest:
            raise JournalError(
                f"the journal {self.where} has schema version {current}, newer than this "
                f"ferryman understands ({latest}); upgrade ferryman"
            )
        for migration in known[current:]:
            types = {"serial": self.dialect.serial, "real": self.dialect.real,
                     "compact": self.dialect.compact}
            for statement in migration.statements(types):
                cur.execute(statement)
            cur.execute(self.q("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)"),
                        (migration.version, time.time()))

    # -- writes --------------------------------------------------------------

    def admit(self, flow: str, candidates: Sequence[Candidate]) -> list[Item]:
        """New pending items for the candidates whose key this flow never saw, in `order`."""
        if not candidates:
            return []
        now = time.time()
        chosen: dict[str, Candidate] = {}
        for candidate in sorted(candidates, key=lambda c: c.order):
            chosen.setdefault(candidate.key, candidate)
        items = [
            Item(id=new_item_id(), flow=flow, key=c.key, origin=c.origin, meta=dict(c.meta),
                 files=list(c.files), created_at=now, updated_at=now)
            for c in chosen.values()
        ]
        return self._write(lambda cur: self._op_admit(cur, items), durable=True)

    def _op_admit(self, cur: Cursor, items: list[Item]) -> list[Item]:
        admitted: list[Item] = []
        todo = items
        while todo:
            rows = [(i.id, i.flow, i.key, i.origin, to_json(i.meta),
                     to_json([str(f) for f in i.files]), i.created_at, i.updated_at) for i in todo]
            inserted = self._insert_items(cur, rows)
            if inserted:
                inserted -= self._op_unadmit_pruned(cur, [i for i in todo if i.id in inserted])
            admitted += [i for i in todo if i.id in inserted]
            skipped = [i for i in todo if i.id not in inserted]
            if not skipped:
                break
            # A row is skipped when its key is known, or (rarely) its random id was taken.
            known = self._op_known(cur, skipped[0].flow, [i.key for i in skipped])
            todo = [i for i in skipped if i.key not in known]
            for item in todo:
                item.id = new_item_id()
        position = {item.key: n for n, item in enumerate(items)}
        admitted.sort(key=lambda i: position[i.key])
        return admitted

    def _op_unadmit_pruned(self, cur: Cursor, inserted: list[Item]) -> set[str]:
        """Delete again the just-inserted items whose key a prune left a tombstone for; their ids.

        Checked after the insert, in the same transaction: on PostgreSQL an insert that waited for
        a prune deleting the same key's row then sees the prune's tombstone (a new statement
        sees what committed meanwhile), so a key is never admitted twice.
        """
        pruned = op_pruned(cur, self.q, inserted[0].flow, [i.key for i in inserted])
        ids = [i.id for i in inserted if i.key in pruned]
        for chunk in chunks(ids):
            cur.execute(self.q(f"DELETE FROM items WHERE id IN ({marks(len(chunk))})"), tuple(chunk))
        return set(ids)

    def claim(self, item_id: str, owner: str, lease: float) -> Item | None:
        """Mark a claimable item running for `owner` until now + `lease` and count an attempt.

        Claimable: pending, or running under an expired lease, or running under
        this same `owner` (an instance resuming its own items after a restart).
        """
        return self._write(lambda cur: self._op_claim(cur, item_id, owner, lease), durable=False)

    def _op_claim(self, cur: Cursor, item_id: str, owner: str, lease: float) -> Item | None:
        now = time.time()
        claimable = ("id = ? AND (state = 'pending' OR (state = 'running' AND "
                     "(lease_until IS NULL OR lease_until < ? OR owner = ?)))")
        if self.dialect.lock:
            # Lock the row first, skipping it when another instance is claiming it right now.
            claimable = f"id = (SELECT id FROM items WHERE {claimable} {self.dialect.lock})"
        cur.execute(self.q(
            "UPDATE items SET state = 'running', owner = ?, lease_until = ?, "
            f"attempts = attempts + 1, updated_at = ? WHERE {claimable} RETURNING {ITEM_COLUMNS}"),
            (owner, now + lease, now, item_id, now, owner))
        row = cur.fetchone()
        return item_from_row(row) if row else None

    def renew(self, item_ids: Sequence[str], owner: str, lease: float) -> set[str]:
        """Extend to now + `lease` the leases `owner` holds on these running items; the ids renewed.

        Waits until applied, not for the commit (like `claim`).  `updated_at` is left alone:
        a renewal is not progress.
        """
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return set()
        return self._write(lambda cur: self._op_renew(cur, ids, owner, lease), durable=False)

    def _op_renew(self, cur: Cursor, ids: Sequence[str], owner: str, lease: float) -> set[str]:
        until = time.time() + lease
        renewed: set[str] = set()
        for chunk in chunks(ids):  # one statement for up to CHUNK items: more than any worker pool
            cur.execute(self.q(
                "UPDATE items SET lease_until = ? WHERE (state = 'running' OR disposal = 'pending') "
                "AND owner = ? "
                f"AND id IN ({marks(len(chunk))}) RETURNING id"), (until, owner, *chunk))
            renewed.update(row[0] for row in cur.fetchall())
        return renewed

    def _op_update_held(self, cur: Cursor, assignments: str, params: tuple[Any, ...],
                        item_id: str, owner: str | None) -> None:
        """``UPDATE items SET <assignments> WHERE id = item_id``; with an `owner`, only while the
        item runs under that owner's lease, else raise `LeaseLost` (the caller's transaction
        is rolled back, so nothing it wrote before stays)."""
        if owner is None:
            cur.execute(self.q(f"UPDATE items SET {assignments} WHERE id = ?"), (*params, item_id))
            return
        # On PostgreSQL a claim in flight holds the row; this waits for it and then looks at
        # the row as that claim left it (READ COMMITTED re-checks the WHERE on the new version).
        cur.execute(self.q(f"UPDATE items SET {assignments} "
                           "WHERE id = ? AND state = 'running' AND owner = ?"),
                    (*params, item_id, owner))
        if cur.rowcount == 0:
            raise self._op_lost(cur, item_id, owner)

    def _op_lost(self, cur: Cursor, item_id: str, owner: str) -> LeaseLost:
        """The one-line error for a write by `owner`, whose lease on `item_id` is gone."""
        cur.execute(self.q("SELECT state, owner FROM items WHERE id = ?"), (item_id,))
        row = cur.fetchone()
        lost = f"item {item_id} is no longer held by {owner}"
        if row is None:
            return LeaseLost(f"{lost}: it is not in the journal {self.where}")
        state, holder = row
        if state == "running" and holder:
            now = f"{holder} took it over after the lease expired"
        else:
            now = f"it is {state} now" + (f" (last held by {holder})" if holder else "")
        return LeaseLost(f"{lost}: {now}; this result was not recorded")

    def step_done(self, run: StepRun, files: Sequence[str], meta: dict[str, str]) -> None:
        files_json, meta_json = to_json([str(f) for f in files]), to_json(meta)
        owner = self._holder(run.item_id)

        def op(cur: Cursor) -> None:
            self._op_update_held(
                cur, "step = ?, files = ?, meta = ?, attempts = 1, error = NULL, "
                "error_type = NULL, updated_at = ?",
                (run.index + 1, files_json, meta_json, time.time()), run.item_id, owner)
            self._op_insert_run(cur, run)

        self._submit(op)

    def step_failed(self, run: StepRun) -> None:
        owner = self._holder(run.item_id)

        def op(cur: Cursor) -> None:
            self._op_update_held(cur, "updated_at = ?", (time.time(),), run.item_id, owner)
            self._op_insert_run(cur, run)

        self._submit(op)

    def _op_insert_run(self, cur: Cursor, run: StepRun) -> None:
        cur.execute(self.q(f"INSERT INTO step_runs ({STEP_COLUMNS}) VALUES ({marks(8)})"),
                    (run.item_id, run.index, run.name, run.started_at, run.ended_at,
                     run.outcome, run.error, to_json(run.outputs)))

    def finish(self, item: Item, durable: bool = True) -> None:
        """Write the item's state, attempts, error (and type), next attempt time; durable on return
        unless `durable` is False (then committed with the next group)."""
        params = (str(item.state), item.attempts, item.error, item.error_type,
                  item.next_attempt_at, time.time(), item.disposal)
        owner = self._holder(item.id)
        # A checked finish keeps `owner`: the item then names the instance that finished it,
        # which is what a stale instance's `LeaseLost` reports.  A pending disposal keeps the
        # owner and its lease: the disposal is still theirs (`claim_disposal`).
        if item.disposal == "pending":
            release = ""
        else:
            release = ", lease_until = NULL" if owner else ", owner = NULL, lease_until = NULL"

        def op(cur: Cursor) -> None:
            self._op_update_held(
                cur, "state = ?, attempts = ?, error = ?, error_type = ?, next_attempt_at = ?, "
                f"updated_at = ?, disposal = ?{release}", params, item.id, owner)

        if durable:
            self._write(op, durable=True)
        else:
            self._submit(op)

    def claim_disposal(self, item_id: str, owner: str, lease: float) -> Item | None:
        """Take the pending disposal of a finished item for `owner` until now + `lease`: when
        `owner` holds it already, or its holder's lease expired (it died after `finish`)."""
        def op(cur: Cursor) -> Item | None:
            now = time.time()
            claimable = ("id = ? AND disposal = 'pending' AND state IN ('done', 'failed', 'skipped') "
                         "AND (lease_until IS NULL OR lease_until < ? OR owner = ?)")
            if self.dialect.lock:
                claimable = f"id = (SELECT id FROM items WHERE {claimable} {self.dialect.lock})"
            cur.execute(self.q(f"UPDATE items SET owner = ?, lease_until = ? WHERE {claimable} "
                               f"RETURNING {ITEM_COLUMNS}"), (owner, now + lease, item_id, now, owner))
            row = cur.fetchone()
            return item_from_row(row) if row else None

        return self._write(op, durable=False)

    def disposed(self, item_id: str, owner: str) -> bool:
        """Record that `owner` disposed of the item's original; False when the disposal was not
        `owner`'s (any more)."""
        def op(cur: Cursor) -> bool:
            cur.execute(self.q("UPDATE items SET disposal = 'done', lease_until = NULL "
                               "WHERE id = ? AND disposal = 'pending' AND owner = ?"), (item_id, owner))
            return cur.rowcount > 0

        return self._write(op, durable=False)

    def undisposed(self, flows: Sequence[str]) -> list[Item]:
        """Finished items of these flows whose disposal is pending and held by nobody (no lease,
        or an expired one): their owner died between `finish` and the disposal."""
        flows = list(dict.fromkeys(flows))
        if not flows:
            return []

        def op(cur: Cursor) -> list[Item]:
            cur.execute(self.q(
                f"SELECT {ITEM_COLUMNS} FROM items WHERE disposal = 'pending' "
                f"AND flow IN ({marks(len(flows))}) AND (lease_until IS NULL OR lease_until < ?) "
                "ORDER BY seq"), (*flows, time.time()))
            return [item_from_row(row) for row in cur.fetchall()]

        return self._read(op)

    def retry(self, item_ids: Sequence[str] = (), flow: str | None = None) -> list[str]:
        """Failed items (by id or unique prefix, or all of `flow`) back to pending, due now."""
        return self._write(lambda cur: self._op_retry(cur, item_ids, flow), durable=True)

    def _op_retry(self, cur: Cursor, item_ids: Sequence[str], flow: str | None) -> list[str]:
        wanted = [found for found in (self._op_resolve(cur, p) for p in item_ids) if found]
        selected: list[tuple[int, str]] = []
        for chunk in chunks(wanted):
            cur.execute(self.q(f"SELECT seq, id FROM items WHERE state = 'failed' AND id IN "
                               f"({marks(len(chunk))}) " + self.dialect.lock), tuple(chunk))
            selected += cur.fetchall()
        if flow is not None:
            cur.execute(self.q("SELECT seq, id FROM items WHERE state = 'failed' AND flow = ? "
                               + self.dialect.lock), (flow,))
            selected += cur.fetchall()
        ids = [item_id for _, item_id in sorted(set(selected))]
        now = time.time()
        for chunk in chunks(ids):
            cur.execute(self.q(
                "UPDATE items SET state = 'pending', attempts = 0, error = NULL, "
                "error_type = NULL, next_attempt_at = ?, owner = NULL, lease_until = NULL, "
                "disposal = NULL, updated_at = ? "
                f"WHERE id IN ({marks(len(chunk))})"), (now, now, *chunk))
        return ids

    def pause(self, flow: str, reason: str) -> None:
        self._write(lambda cur: cur.execute(self.q(
            "INSERT INTO paused_flows (flow, reason, paused_at) VALUES (?, ?, ?) "
            "ON CONFLICT (flow) DO UPDATE SET reason = excluded.reason, "
            "paused_at = excluded.paused_at"),
            (flow, reason, time.time())), durable=True)

    def resume(self, flow: str) -> bool:
        def op(cur: Cursor) -> bool:
            cur.execute(self.q("DELETE FROM paused_flows WHERE flow = ?"), (flow,))
            return cur.rowcount > 0

        return self._write(op, durable=True)

    def set_cursor(self, flow: str, name: str, value: str) -> None:
        self._write(lambda cur: cur.execute(self.q(
            "INSERT INTO cursors (flow, name, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (flow, name) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at"), (flow, name, value, time.time())), durable=True)

    # -- reads ---------------------------------------------------------------

    def known(self, flow: str, keys: Sequence[str]) -> set[str]:
        keys = list(dict.fromkeys(keys))
        return self._read(lambda cur: self._op_known(cur, flow, keys)) if keys else set()

    def _op_known(self, cur: Cursor, flow: str, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(keys):
            cur.execute(self.q("SELECT key FROM items WHERE flow = ? "
                               f"AND key IN ({marks(len(chunk))})"), (flow, *chunk))
            found.update(row[0] for row in cur.fetchall())
        rest = [k for k in keys if k not in found]
        return found | (op_pruned(cur, self.q, flow, rest) if rest else set())

    def _op_resolve(self, cur: Cursor, prefix: str) -> str | None:
        """The full id of the one item whose id starts with `prefix`, else None."""
        prefix = prefix.strip().lower()
        if not _ID_PREFIX.fullmatch(prefix):
            return None
        cur.execute(self.q("SELECT id FROM items WHERE id LIKE ? ORDER BY id LIMIT 2"),
                    (prefix + "%",))
        rows = cur.fetchall()
        return str(rows[0][0]) if len(rows) == 1 else None

    def get(self, item_id: str) -> Item | None:
        def op(cur: Cursor) -> Item | None:
            full = self._op_resolve(cur, item_id)
            if full is None:
                return None
            cur.execute(self.q(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = ?"), (full,))
            row = cur.fetchone()
            return item_from_row(row) if row else None

        return self._read(op)

    def steps(self, item_id: str) -> list[StepRun]:
        def op(cur: Cursor) -> list[StepRun]:
            cur.execute(self.q(f"SELECT {STEP_COLUMNS} FROM step_runs WHERE item_id = ? "
                               "ORDER BY seq"), (item_id,))
            return [step_run_from_row(row) for row in cur.fetchall()]

        return self._read(op)

    def unfinished(self, flows: Sequence[str]) -> list[Item]:
        flows = list(dict.fromkeys(flows))
        if not flows:
            return []

        def op(cur: Cursor) -> list[Item]:
            cur.execute(self.q(
                f"SELECT {ITEM_COLUMNS} FROM items WHERE state IN ('pending', 'running') "
                f"AND flow IN ({marks(len(flows))}) ORDER BY seq"), tuple(flows))
            return [item_from_row(row) for row in cur.fetchall()]

        return self._read(op)

    def history(self, flow: str | None = None, state: State | None = None,
                limit: int = 50) -> list[Item]:
        where, params = [], []
        if flow is not None:
            where.append("flow = ?")
            params.append(flow)
        if state is not None:
            where.append("state = ?")
            params.append(str(state))
        sql = f"SELECT {ITEM_COLUMNS} FROM items"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        sql += " ORDER BY seq DESC" + (f" LIMIT {int(limit)}" if limit > 0 else "")

        def op(cur: Cursor) -> list[Item]:
            cur.execute(self.q(sql), tuple(params))
            return [item_from_row(row) for row in cur.fetchall()]

        return self._read(op)

    def find(self, flow: str, key: str) -> Item | None:
        def op(cur: Cursor) -> Item | None:
            cur.execute(self.q(f"SELECT {ITEM_COLUMNS} FROM items WHERE flow = ? AND key = ?"),
                        (flow, key))
            row = cur.fetchone()
            return item_from_row(row) if row else None

        return self._read(op)

    def counts(self) -> dict[str, dict[str, int]]:
        def op(cur: Cursor) -> dict[str, dict[str, int]]:
            cur.execute("SELECT flow, state, count(*) FROM items GROUP BY flow, state "
                        "ORDER BY flow")
            result: dict[str, dict[str, int]] = {}
            for flow, state, n in cur.fetchall():
                result.setdefault(flow, {})[state] = int(n)
            return result

        return self._read(op)

    def paused(self) -> dict[str, str]:
        def op(cur: Cursor) -> dict[str, str]:
            cur.execute("SELECT flow, reason FROM paused_flows ORDER BY flow")
            return {flow: reason for flow, reason in cur.fetchall()}

        return self._read(op)

    def get_cursor(self, flow: str, name: str) -> str | None:
        def op(cur: Cursor) -> str | None:
            cur.execute(self.q("SELECT value FROM cursors WHERE flow = ? AND name = ?"),
                        (flow, name))
            row = cur.fetchone()
            return str(row[0]) if row else None

        return self._read(op)

    # -- retention -----------------------------------------------------------

    def prune(self, retention: Retention, dry_run: bool = False) -> PruneReport:
        """Remove what `retention` allows (see `ferryman.journal.retention`), a batch per
        transaction; with `dry_run`, only count it."""
        report = PruneReport()
        kept = self._read(op_newest_done)
        if dry_run:
            self._read(lambda cur: op_count(cur, self.q, retention, kept, report))
        else:
            now = time.time()
            while self._write(lambda cur: op_prune_batch(cur, self.q, retention, kept, now, report),
                              durable=True):
                pass
        if retention.done_before is not None:
            report.kept_newest = self._read(lambda cur: self._op_old_newest(cur, kept, retention))
        return report

    def _op_old_newest(self, cur: Cursor, kept: Sequence[str], retention: Retention) -> int:
        if not kept:
            return 0
        cur.execute(self.q(f"SELECT count(*) FROM items WHERE id IN ({marks(len(kept))}) "
                           "AND updated_at < ?"), (*kept, retention.done_before))
        return int(cur.fetchone()[0])

    def export(self, before: float | None = None, flow: str | None = None
               ) -> Iterator[tuple[Item, list[StepRun]]]:
        """Items (last updated before `before`, of `flow`) with their step runs, oldest first,
        streamed a batch at a time."""
        return exported(self._read, self.q, before, flow)

    def size(self) -> int:
        """Bytes the journal takes on disk."""
        raise NotImplementedError

    def vacuum(self, full: bool = False) -> None:
        """Give the space of removed rows back (see the backends)."""
        raise NotImplementedError
