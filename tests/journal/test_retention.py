"""Retention on every journal backend: prune (tombstones, the newest done item, failed items only
when allowed, dry run), export (streamed, with step runs) and vacuum."""

from __future__ import annotations

import time

from ferryman.item import State
from ferryman.journal.base import Journal
from ferryman.journal.retention import BATCH, Retention
from journal.backends import Backend
from journal.test_contract import cands, done, run


def finished(j: Journal, flow: str, keys: list[str], state: State = State.DONE, steps: int = 2) -> list[str]:
    """Admit `keys`, run `steps` steps on each and end them in `state`; their ids."""
    ids = []
    for item in j.admit(flow, cands(*keys)):
        claimed = j.claim(item.id, "w", 60)
        assert claimed is not None
        for index in range(steps):
            j.step_done(run(claimed, index, delivered=f"/out/{item.key}"), [f"/w/{item.key}"], {})
        j.finish(done(claimed, state, error="boom" if state == State.FAILED else None))
        ids.append(item.id)
    j.flush()
    return ids


def later() -> float:
    """A cut-off after everything journaled so far: every finished item is old enough."""
    return time.time() + 1


def test_prune_removes_old_finished_items_and_leaves_tombstones(backend: Backend) -> None:
    j = backend.journal()
    finished(j, "f", ["a", "b", "c"])
    finished(j, "f", ["s"], State.SKIPPED, steps=0)
    (failed,) = finished(j, "f", ["x"], State.FAILED, steps=1)
    (waiting,) = j.admit("f", cands("p"))
    newest = finished(j, "f", ["d"])[0]
    report = j.prune(Retention(done_before=later()))
    assert report.items == {"done": 3, "skipped": 1} and report.steps == 6
    assert report.tombstones == 4 and report.kept_newest == 1
    left = {i.key: i.state for i in j.history(limit=0)}
    assert left == {"d": State.DONE, "p": State.PENDING, "x": State.FAILED}
    assert j.get(newest) is not None and j.get(failed) is not None and j.get(waiting.id) is not None
    assert backend.execute("SELECT count(*) FROM step_runs")[0][0] == 2 + 1  # d's two, x's one
    # Promise 2 after the prune: the pruned keys are known and are not admitted again.
    assert j.known("f", ["a", "s", "new"]) == {"a", "s"}
    assert [i.key for i in j.admit("f", cands("a", "b", "s", "new"))] == ["new"]
    assert j.find("f", "a") is None  # the item itself is gone
    assert [i.key for i in j.admit("other", cands("a"))] == ["a"], "a tombstone belongs to its flow"
    j.close()
    again = backend.journal()
    assert again.admit("f", cands("c")) == [], "tombstones are durable"


def test_failed_items_go_only_when_failed_before_allows(backend: Backend) -> None:
    j = backend.journal()
    finished(j, "f", ["x", "y"], State.FAILED)
    finished(j, "f", ["ok"])
    assert j.prune(Retention(done_before=later())).total == 0
    report = j.prune(Retention(done_before=None, failed_before=later()))
    assert report.items == {"failed": 2} and report.tombstones == 2
    assert j.admit("f", cands("x")) == [], "a pruned failed item is not retried silently"
    assert [i.key for i in j.history(limit=0)] == ["ok"]


def test_keys_guarded_by_a_cursor_leave_no_tombstone(backend: Backend) -> None:
    j = backend.journal()
    finished(j, "tick", ["2026-01-01T00:00Z", "2026-01-02T00:00Z", "expect:2026-01-01"])
    finished(j, "tick", ["2026-01-03T00:00Z"])
    guard = {("tick", ""): 0.0, ("tick", "expect:"): later()}  # the expect cursor passed them all
    report = j.prune(Retention(done_before=later(), guarded=guard))
    assert report.total == 3 and report.tombstones == 2  # the two ticks: their cursor (0) is behind
    guard = {("tick", "2026-"): later()}
    finished(j, "tick", ["2026-01-04T00:00Z"])
    report = j.prune(Retention(done_before=later(), guarded=guard))
    assert report.total == 1 and report.tombstones == 0, "a tick before the cursor never comes back"


def test_dry_run_counts_what_prune_removes_and_changes_nothing(backend: Backend) -> None:
    j = backend.journal()
    finished(j, "f", [f"k{n}" for n in range(7)])
    finished(j, "g", ["only"])
    finished(j, "f", ["bad"], State.FAILED)
    retention = Retention(done_before=later(), failed_before=later())
    dry = j.prune(retention, dry_run=True)
    assert sum(1 for _ in j.export()) == 9
    real = j.prune(retention)
    assert dry == real
    assert real.items == {"done": 6, "failed": 1} and real.steps == 14 and real.kept_newest == 2


def test_prune_works_in_batches_and_keeps_new_items(backend: Backend) -> None:
    j = backend.journal()
    keys = [f"k{n}" for n in range(BATCH * 2 + 7)]
    finished(j, "f", keys, steps=1)
    cut = time.time()
    time.sleep(0.02)
    finished(j, "f", ["fresh"], steps=1)
    finished(j, "f", ["fresh-too"], steps=1)
    report = j.prune(Retention(done_before=cut))
    assert report.items == {"done": len(keys)} and report.tombstones == len(keys)
    assert [i.key for i in j.history(limit=0)] == ["fresh-too", "fresh"]
    assert j.admit("f", cands(*keys)) == []


def test_a_retried_item_is_not_pruned(backend: Backend) -> None:
    j = backend.journal()
    (failed,) = finished(j, "f", ["x"], State.FAILED)
    assert j.retry([failed]) == [failed]
    assert j.prune(Retention(done_before=later(), failed_before=later())).total == 0
    assert j.get(failed) is not None


def test_export_streams_every_item_with_its_steps(backend: Backend) -> None:
    j = backend.journal()
    finished(j, "f", [f"k{n}" for n in range(BATCH + 3)])
    cut = time.time()
    time.sleep(0.02)
    finished(j, "g", ["late"])
    exported = list(j.export())
    assert [item.key for item, _ in exported][:2] == ["k0", "k1"] and len(exported) == BATCH + 4
    assert all(len(steps) == 2 and steps[0].outputs == {"delivered": f"/out/{item.key}"}
               for item, steps in exported)
    assert [item.key for item, _ in j.export(flow="g")] == ["late"]
    assert len(list(j.export(before=cut))) == BATCH + 3


def test_vacuum_gives_space_back(backend: Backend) -> None:
    j = backend.journal()
    finished(j, "f", [f"{'k' * 200}{n}" for n in range(1500)])
    grown = j.size()
    assert grown > 0
    j.prune(Retention(done_before=later()))
    j.vacuum(full=True)
    assert j.size() < grown
    assert [i.key for i in j.history(limit=0)] == [f"{'k' * 200}1499"]
