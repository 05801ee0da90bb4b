"""JournalContract: what every journal backend promises, run against SQLite and PostgreSQL.

A backend joins the suite by subclassing `JournalContract` with a `backend`
fixture (see conftest.py); `TestJournal` runs it on every backend there.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from ferryman.errors import JournalError
from ferryman.item import Candidate, Item, State, StepRun
from ferryman.journal.migrations import migrations
from journal.backends import Backend


def cands(*keys: str, flow_files: bool = True) -> list[Candidate]:
    return [Candidate(key=k, files=(Path(f"/in/{k}.csv"),) if flow_files else (),
                      meta={"name": f"{k}.csv"}, origin=f"/in/{k}.csv") for k in keys]


def run(item: Item, index: int, outcome: str = "done", error: str | None = None,
        **outputs: object) -> StepRun:
    now = time.time()
    return StepRun(item_id=item.id, index=index, name=f"step{index}", started_at=now,
                   ended_at=now, outcome=outcome, error=error, outputs=dict(outputs))


def done(journal_item: Item, state: State = State.DONE, **changes: object) -> Item:
    journal_item.state = state
    for name, value in changes.items():
        setattr(journal_item, name, value)
    return journal_item


class JournalContract:
    """The Journal protocol's promises; needs a `backend` fixture."""

    # -- admit / known / find ------------------------------------------------

    def test_admit_returns_pending_items_in_order(self, backend: Backend) -> None:
        j = backend.journal()
        found = [Candidate(key=k, files=(Path(f"/in/{k}"),), meta={"m": k}, order=o, origin=k)
                 for k, o in [("late", 3.0), ("early", 1.0), ("middle", 2.0)]]
        items = j.admit("f", found)
        assert [i.key for i in items] == ["early", "middle", "late"]
        for item in items:
            assert re.fullmatch(r"[0-9a-f]{12}", item.id)
            assert item.state == State.PENDING and item.step == 0 and item.attempts == 0
            assert item.flow == "f" and item.meta == {"m": item.key}
            assert item.files == [Path(f"/in/{item.key}")] and item.origin == item.key
        assert [i.key for i in j.unfinished(["f"])] == ["early", "middle", "late"]

    def test_admit_skips_known_keys_in_any_state_and_across_reopen(self, backend: Backend) -> None:
        j = backend.journal()
        first = j.admit("f", cands("a", "b", "a"))
        assert [i.key for i in first] == ["a", "b"]
        assert j.admit("f", cands("a", "b")) == []
        claimed = j.claim(first[0].id, "w", 60)
        assert claimed is not None
        j.finish(done(claimed))
        j.close()
        j = backend.journal()
        assert j.admit("f", cands("a", "b")) == []
        assert [i.key for i in j.admit("f", cands("b", "c"))] == ["c"]
        assert [i.key for i in j.admit("other", cands("a"))] == ["a"], "keys are per flow"
        assert j.counts() == {"f": {"done": 1, "pending": 2}, "other": {"pending": 1}}

    def test_admit_and_known_handle_large_batches(self, backend: Backend) -> None:
        j = backend.journal()
        keys = [f"file-{n:05d}" for n in range(10_000)]
        items = j.admit("bulk", [Candidate(key=k, files=(), order=n) for n, k in enumerate(keys)])
        assert len(items) == 10_000 and len({i.id for i in items}) == 10_000
        assert [i.key for i in items[:3]] == keys[:3]
        assert j.known("bulk", keys) == set(keys)
        assert j.known("bulk", [*keys[:5], "nope"]) == set(keys[:5])
        assert j.admit("bulk", [Candidate(key=k, files=()) for k in keys[::7]]) == []
        assert j.counts() == {"bulk": {"pending": 10_000}}

    def test_known_and_find(self, backend: Backend) -> None:
        j = backend.journal()
        assert j.known("f", []) == set()
        (item,) = j.admit("f", cands("x"))
        assert j.known("f", ["x", "y"]) == {"x"}
        assert j.known("g", ["x"]) == set()
        found = j.find("f", "x")
        assert found is not None and found.id == item.id
        assert j.find("f", "y") is None

    # -- claim and leases ------------------------------------------------------

    def test_claim_takes_a_lease_and_counts_an_attempt(self, backend: Backend) -> None:
        j = backend.journal()
        (item,) = j.admit("f", cands("a"))
        claimed = j.claim(item.id, "worker-1", 60)
        assert claimed is not None
        assert claimed.state == State.RUNNING and claimed.attempts == 1 and claimed.key == "a"
        assert j.claim(item.id, "worker-2", 60) is None, "held by worker-1 until its lease expires"
        again = j.claim(item.id, "worker-1", 60)
        assert again is not None and again.attempts == 2, "an owner resumes its own items"
        j.flush()
        stored = j.get(item.id)
        assert stored is not None and stored.state == State.RUNNING and stored.attempts == 2

    def test_expired_lease_can_be_claimed_by_another_owner(self, backend: Backend) -> None:
        j = backend.journal()
        (item,) = j.admit("f", cands("a"))
        assert j.claim(item.id, "crashed", -1.0) is not None  # a lease that is already over
        taken = j.claim(item.id, "survivor", 60)
        assert taken is not None and taken.attempts == 2
        assert j.claim(item.id, "crashed", 60) is None

    def test_claim_refuses_finished_and_unknown_items(self, backend: Backend) -> None:
        j = backend.journal()
        a, b, c = j.admit("f", cands("a", "b", "c"))
        for item, state in [(a, State.DONE), (b, State.FAILED), (c, State.SKIPPED)]:
            claimed = j.claim(item.id, "w", 60)
            assert claimed is not None
            j.finish(done(claimed, state))
            assert j.claim(item.id, "w", 60) is None
        assert j.claim("0123456789ab", "w", 60) is None

    def test_one_claim_wins_among_racing_owners(self, backend: Backend) -> None:
        j = backend.journal()
        items = j.admit("f", cands(*[f"k{n}" for n in range(20)]))
        winners: dict[str, list[str]] = {i.id: [] for i in items}
        start = threading.Barrier(6)

        def worker(owner: str) -> None:
            start.wait()
            for item in items:
                if j.claim(item.id, owner, 60) is not None:
                    winners[item.id].append(owner)

        threads = [threading.Thread(target=worker, args=(f"owner-{n}",)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(len(owners) == 1 for owners in winners.values()), winners

    def test_renew_extends_only_the_leases_the_owner_holds(self, backend: Backend) -> None:
        j = backend.journal()
        expired, held, other, finished, pending = j.admit("f", cands("a", "b", "c", "d", "e"))
        assert j.claim(expired.id, "w", -1.0) is not None  # its lease is over, nobody took it
        assert j.claim(held.id, "w", 60) is not None
        assert j.claim(other.id, "someone-else", 60) is not None
        claimed = j.claim(finished.id, "w", 60)
        assert claimed is not None
        j.finish(done(claimed))
        j.flush()
        before = j.get(expired.id)
        assert before is not None
        asked = [expired.id, held.id, other.id, finished.id, pending.id, "0123456789ab", held.id]
        assert j.renew(asked, "w", 600) == {expired.id, held.id}
        assert j.renew([], "w", 600) == set()
        assert j.claim(expired.id, "someone-else", 60) is None, "renewed: w holds it again"
        j.flush()
        ((until,),) = backend.execute(f"SELECT lease_until FROM items WHERE id = '{expired.id}'")
        assert until > time.time() + 500
        after = j.get(expired.id)
        assert after is not None and after.updated_at == before.updated_at, "renewal is not progress"
        assert after.state == State.RUNNING and after.attempts == before.attempts

    def test_renew_takes_many_items_at_once(self, backend: Backend) -> None:
        j = backend.journal()
        items = j.admit("f", cands(*[f"k{n}" for n in range(600)]))
        for item in items:
            assert j.claim(item.id, "w", -1.0) is not None
        assert j.renew([i.id for i in items], "w", 60) == {i.id for i in items}
        assert all(j.claim(i.id, "other", 60) is None for i in items[::50])

    def test_an_expired_lease_nobody_took_still_lets_its_owner_finish(self, backend: Backend) -> None:
        j = backend.journal()
        (item,) = j.admit("f", cands("a"))
        claimed = j.claim(item.id, "slow", -1.0)
        assert claimed is not None
        j.step_failed(run(claimed, 0, outcome="retry", error="timed out"))
        j.step_done(run(claimed, 0), ["/work/a.csv"], {})
        j.finish(done(claimed))
        j.close()
        stored = backend.journal().get(item.id)
        assert stored is not None and (stored.state, stored.step) == (State.DONE, 1)

    # -- disposals -------------------------------------------------------------

    def test_a_pending_disposal_stays_with_the_owner_that_finished_the_item(self, backend: Backend) -> None:
        j = backend.journal()
        (item,) = j.admit("f", cands("a"))
        claimed = j.claim(item.id, "owner", 60)
        assert claimed is not None
        j.finish(done(claimed, disposal="pending"))
        stored = j.get(item.id)
        assert stored is not None and (stored.state, stored.disposal) == (State.DONE, "pending")
        assert j.claim_disposal(item.id, "late-seer", 60) is None, "the owner's lease still runs"
        assert j.undisposed(["f"]) == []
        assert j.renew([item.id], "owner", 60) == {item.id}, "the heartbeat keeps the disposal"
        held = j.claim_disposal(item.id, "owner", 60)
        assert held is not None and held.disposal == "pending"
        assert not j.disposed(item.id, "late-seer")
        assert j.disposed(item.id, "owner")
        j.flush()
        stored = j.get(item.id)
        assert stored is not None and stored.disposal == "done"
        assert j.claim_disposal(item.id, "owner", 60) is None, "a done disposal is never taken again"
        assert j.renew([item.id], "owner", 60) == set()

    def test_a_disposal_cut_short_is_taken_over_once_the_lease_expired(self, backend: Backend) -> None:
        j = backend.journal()
        crashed, kept, plain = j.admit("f", cands("a", "b", "c"))
        for item, lease in [(crashed, -1.0), (kept, 60.0)]:
            claimed = j.claim(item.id, "crashed" if lease < 0 else "alive", lease)
            assert claimed is not None
            j.finish(done(claimed, disposal="pending"))
        claimed = j.claim(plain.id, "alive", 60)
        assert claimed is not None
        j.finish(done(claimed))  # a source that keeps its originals: nothing to dispose of
        assert [i.id for i in j.undisposed(["f", "other"])] == [crashed.id]
        assert j.undisposed(["other"]) == []
        taken = j.claim_disposal(crashed.id, "survivor", 60)
        assert taken is not None and taken.state == State.DONE
        assert j.claim_disposal(crashed.id, "crashed", 60) is None, "the survivor holds it now"
        j.flush()  # a claim waits until applied, not committed: reads see it after the commit
        assert j.undisposed(["f"]) == []
        assert not j.disposed(crashed.id, "crashed")
        assert j.disposed(crashed.id, "survivor")
        assert j.claim_disposal(plain.id, "survivor", 60) is None

    def test_one_disposal_claim_wins_among_racing_owners(self, backend: Backend) -> None:
        j = backend.journal()
        items = j.admit("f", cands(*[f"k{n}" for n in range(20)]))
        for item in items:
            claimed = j.claim(item.id, "crashed", -1.0)
            assert claimed is not None
            j.finish(done(claimed, disposal="pending"))
        winners: dict[str, list[str]] = {i.id: [] for i in items}
        start = threading.Barrier(4)

        def worker(owner: str) -> None:
            start.wait()
            for item in items:
                if j.claim_disposal(item.id, owner, 60) is not None:
                    winners[item.id].append(owner)

        threads = [threading.Thread(target=worker, args=(f"owner-{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(len(owners) == 1 for owners in winners.values()), winners

    def test_retry_forgets_the_disposal(self, backend: Backend) -> None:
        j = backend.journal()
        (item,) = j.admit("f", cands("a"))
        claimed = j.claim(item.id, "w", 60)
        assert claimed is not None
        j.finish(done(claimed, State.FAILED, error="boom", disposal="pending"))
        assert j.disposed(item.id, "w")
        assert j.retry([item.id]) == [item.id]
        stored = j.get(item.id)
        assert stored is not None and (stored.state, stored.disposal) == (State.PENDING, None)

    # -- steps -----------------------------------------------------------------

    def test_step_done_survives_reopen(self, backend: Backend) -> None:
        j = backend.journal()
        (item,) = j.admit("f", cands("a"))
        claimed = j.claim(item.id, "w", 60)
        assert claimed is not None
        j.step_done(run(claimed, 0, size=12), ["/work/x/a.csv"], {"name": "a.csv", "rows": "3"})
        j.step_failed(run(claimed, 1, outcome="retry", error="timed out"))
        j.step_done(run(claimed, 1), ["/work/x/b.csv", "/work/x/c.csv"], {"name": "b.csv"})
        j.close()
        j = backend.journal()
        stored = j.get(item.id)
        assert stored is not None
        assert stored.step == 2 and stored.state == State.RUNNING
        assert stored.files == [Path("/work/x/b.csv"), Path("/work/x/c.csv")]
        assert stored.meta == {"name": "b.csv"}
        runs = j.steps(item.id)
        assert [(r.index, r.name, r.outcome, r.error) for r in runs] == [
            (0, "step0", "done", None), (1, "step1", "retry", "timed out"), (1, "step1", "done", None)]
        assert runs[0].outputs == {"size": 12} and runs[0].ended_at is not None
        assert j.steps("0123456789ab") == []

    def test_attempts_count_per_step(self, backend: Backend) -> None:
        j = backend.journal()
        (item,) = j.admit("f", cands("a"))
        first = j.claim(item.id, "w", 60)
        assert first is not None
        j.finish(done(first, State.PENDING, error="boom", error_type="OSError"))
        second = j.claim(item.id, "w", 60)
        assert second is not None and second.attempts == 2 and second.error_type == "OSError"
        j.step_done(run(second, 0), ["/in/a.csv"], {})
        j.flush()
        stored = j.get(item.id)
        assert stored is not None and stored.attempts == 1, "the next step starts at its first attempt"
        assert stored.error is None and stored.error_type is None
        resumed = j.claim(item.id, "w", 60)
        assert resumed is not None and resumed.attempts == 2, "a resumed step knows it ran before"

    # -- finish ----------------------------------------------------------------

    def test_finish_records_each_final_state(self, backend: Backend) -> None:
        j = backend.journal()
        a, b, c, d = j.admit("f", cands("a", "b", "c", "d"))
        due = time.time() + 300
        outcomes = {
            a.id: dict(state=State.DONE),
            b.id: dict(state=State.FAILED, error="PermissionError: denied", error_type="PermanentError"),
            c.id: dict(state=State.SKIPPED, error="vanished before processing: /in/c.csv"),
            d.id: dict(state=State.PENDING, error="timeout", error_type="TransientError",
                       next_attempt_at=due),
        }
        for item in (a, b, c, d):
            claimed = j.claim(item.id, "w", 60)
            assert claimed is not None
            j.finish(done(claimed, **outcomes[item.id]))  # type: ignore[arg-type]
        j.close()
        j = backend.journal()
        for item_id, expected in outcomes.items():
            stored = j.get(item_id)
            assert stored is not None
            assert stored.state == expected["state"] and stored.attempts == 1
            assert stored.error == expected.get("error")
            assert stored.error_type == expected.get("error_type")
            assert stored.next_attempt_at == expected.get("next_attempt_at")
            assert stored.updated_at >= stored.created_at > 0
        assert [i.key for i in j.unfinished(["f"])] == ["d"]
        retried = j.claim(d.id, "someone-else", 60)
        assert retried is not None and retried.attempts == 2, "a finished item has no lease"

    # -- retry -----------------------------------------------------------------

    def test_retry_by_id_prefix_and_flow(self, backend: Backend) -> None:
        j = backend.journal()
        items = j.admit("f", cands("a", "b", "c", "ok")) + j.admit("g", cands("x", "y"))
        for item in items:
            claimed = j.claim(item.id, "w", 60)
            assert claimed is not None
            state = State.DONE if item.key == "ok" else State.FAILED
            j.finish(done(claimed, state, error=None if state == State.DONE else "boom",
                          error_type="PermanentError"))
        a, b, c, ok, x, y = items
        assert j.retry([a.id]) == [a.id]
        assert j.retry([b.id[:8].upper()]) == [b.id], "a unique prefix, any case"
        assert j.retry([ok.id, a.id, "zz%", ""]) == [], "done, already pending, nonsense: untouched"
        assert sorted(j.retry(flow="g")) == sorted([x.id, y.id])
        assert j.retry([c.id], flow="g") == [c.id]
        j.close()
        j = backend.journal()
        for item in (a, b, c, x, y):
            stored = j.get(item.id)
            assert stored is not None
            assert (stored.state, stored.attempts, stored.error, stored.error_type) == (
                State.PENDING, 0, None, None)
            assert stored.next_attempt_at is not None and stored.next_attempt_at <= time.time()
        assert {i.key for i in j.unfinished(["f", "g"])} == {"a", "b", "c", "x", "y"}

    # -- pause, cursors ----------------------------------------------------------

    def test_pause_and_resume_persist(self, backend: Backend) -> None:
        j = backend.journal()
        assert j.paused() == {}
        j.pause("f", "item 1 failed: boom")
        j.pause("f", "item 2 failed: bang")
        j.pause("g", "stop_on_error")
        j.close()
        j = backend.journal()
        assert j.paused() == {"f": "item 2 failed: bang", "g": "stop_on_error"}
        assert j.resume("f") is True
        assert j.resume("f") is False
        assert j.resume("never") is False
        j.close()
        assert backend.journal().paused() == {"g": "stop_on_error"}

    def test_cursors(self, backend: Backend) -> None:
        j = backend.journal()
        assert j.get_cursor("mail", "uid") is None
        j.set_cursor("mail", "uid", "1234:10")
        j.set_cursor("mail", "uid", "1234:11")
        j.set_cursor("mail", "other", "x")
        j.set_cursor("api", "uid", "7")
        j.close()
        j = backend.journal()
        assert j.get_cursor("mail", "uid") == "1234:11"
        assert j.get_cursor("mail", "other") == "x"
        assert j.get_cursor("api", "uid") == "7"

    # -- reads -----------------------------------------------------------------

    def test_history_is_newest_first_with_filters(self, backend: Backend) -> None:
        j = backend.journal()
        f_items = j.admit("f", cands("f1", "f2", "f3"))
        g_items = j.admit("g", cands("g1", "g2"))
        claimed = j.claim(f_items[1].id, "w", 60)
        assert claimed is not None
        j.finish(done(claimed, State.FAILED, error="boom"))
        assert [i.key for i in j.history()] == ["g2", "g1", "f3", "f2", "f1"]
        assert [i.key for i in j.history(limit=2)] == ["g2", "g1"]
        assert [i.key for i in j.history(flow="f")] == ["f3", "f2", "f1"]
        assert [i.key for i in j.history(state=State.FAILED)] == ["f2"]
        assert [i.key for i in j.history(flow="g", state=State.PENDING, limit=1)] == ["g2"]
        assert j.history(flow="nope") == []
        assert len(j.history(limit=0)) == 5, "limit 0: no limit"
        assert g_items[0].id in {i.id for i in j.history()}

    def test_counts(self, backend: Backend) -> None:
        j = backend.journal()
        assert j.counts() == {}
        a, _b = j.admit("f", cands("a", "b"))
        j.admit("g", cands("c"))
        claimed = j.claim(a.id, "w", 60)
        assert claimed is not None
        j.flush()
        assert j.counts() == {"f": {"running": 1, "pending": 1}, "g": {"pending": 1}}

    def test_get_by_unique_prefix(self, backend: Backend) -> None:
        j = backend.journal()
        items = j.admit("f", cands(*[f"k{n}" for n in range(40)]))
        item = items[0]
        for prefix in (item.id, item.id[:6], item.id.upper()):
            found = j.get(prefix)
            assert found is not None and found.id == item.id
        # With 40 ids, some single hex digit starts at least three of them: ambiguous.
        first_digits = [i.id[0] for i in items]
        ambiguous = max(set(first_digits), key=first_digits.count)
        assert j.get(ambiguous) is None
        for nonsense in ("", "xyz", "%", "_" * 12, item.id + "0"):
            assert j.get(nonsense) is None

    def test_unfinished_after_a_crash_resumes_where_it_stopped(self, backend: Backend) -> None:
        j = backend.journal()
        _a, b, c = j.admit("f", cands("a", "b", "c"))
        j.admit("other", cands("z"))
        claimed = j.claim(b.id, "w", 60)
        assert claimed is not None
        j.step_done(run(claimed, 0), ["/work/b/out.csv"], {"name": "out.csv"})
        finished = j.claim(c.id, "w", 60)
        assert finished is not None
        j.finish(done(finished))
        j.close()  # the process dies here: b never finishes
        j = backend.journal()
        left = j.unfinished(["f"])
        assert [(i.key, i.state, i.step) for i in left] == [
            ("a", State.PENDING, 0), ("b", State.RUNNING, 1)]
        assert left[1].files == [Path("/work/b/out.csv")]
        assert j.unfinished([]) == []
        assert [i.key for i in j.unfinished(["f", "other"])] == ["a", "b", "z"]
        resumed = j.claim(b.id, "w", 60)
        assert resumed is not None and resumed.step == 1 and resumed.attempts == 2

    # -- schema ----------------------------------------------------------------

    def test_schema_version_records_every_migration_once(self, backend: Backend) -> None:
        backend.journal().close()
        backend.journal().close()
        versions = [row[0] for row in backend.execute(
            "SELECT version FROM schema_version ORDER BY version")]
        assert versions == [m.version for m in migrations()] and versions[0] == 1

    def test_a_newer_journal_is_refused(self, backend: Backend) -> None:
        backend.journal().close()
        backend.execute("INSERT INTO schema_version (version, applied_at) VALUES (999, 0)")
        with pytest.raises(JournalError, match=r"schema version 999, newer than this ferryman"):
            backend.journal()

    def test_a_closed_journal_refuses_work(self, backend: Backend) -> None:
        j = backend.journal()
        j.close()
        j.close()
        with pytest.raises(JournalError, match="closed"):
            j.admit("f", cands("a"))

    # -- threads -----------------------------------------------------------------

    def test_many_threads_share_one_journal(self, backend: Backend) -> None:
        j = backend.journal()
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                for k in range(15):
                    (item,) = j.admit("f", cands(f"{n}-{k}"))
                    claimed = j.claim(item.id, f"w{n}", 60)
                    assert claimed is not None
                    j.step_done(run(claimed, 0), [f"/w/{n}-{k}"], {})
                    j.finish(done(claimed, State.DONE if k % 3 else State.FAILED))
                    assert j.get(item.id) is not None
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert j.counts() == {"f": {"done": 60, "failed": 30}}
        assert all(i.step == 1 for i in j.history(limit=0))


class TestJournal(JournalContract):
    """The contract on every backend of conftest's `backend` fixture."""
