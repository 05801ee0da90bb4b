"""The PostgreSQL journal beyond the contract: several instances, leases lost and renewed,
broken connections, addresses.  Two journal objects are two instances."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ferryman.errors import JournalError
from ferryman.item import Candidate, State, StepRun
from ferryman.journal import open_journal
from ferryman.journal.base import Journal, LeaseLost
from ferryman.journal.migrations import migrations
from ferryman.journal.postgres import PostgresJournal
from journal.backends import Backend
from support import ferryman, free_port


def test_instances_never_run_the_same_item(pg_backend: Backend) -> None:
    machines = [pg_backend.journal(), pg_backend.journal()]
    items = machines[0].admit("f", [Candidate(key=f"k{n}", files=()) for n in range(200)])
    won: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(journal: Journal, owner: str) -> None:
        start.wait()
        for item in items:
            if journal.claim(item.id, owner, 60) is not None:
                with lock:
                    won.append(item.id)

    threads = [threading.Thread(target=worker, args=(machines[n % 2], f"m{n % 2}-w{n}"))
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == sorted(i.id for i in items), "each item claimed exactly once"


def step(item_id: str, index: int, outcome: str = "done") -> StepRun:
    now = time.time()
    return StepRun(item_id, index, f"step{index}", now, now, outcome, None, {})


def test_a_stale_instance_cannot_write_an_item_taken_over(pg_backend: Backend) -> None:
    stale, new = pg_backend.journal(), pg_backend.journal()
    (item,) = stale.admit("f", [Candidate(key="a", files=())])
    mine = stale.claim(item.id, "host-a:/srv", -1.0)  # a step outlived the lease, unrenewed
    assert mine is not None
    theirs = new.claim(item.id, "host-b:/srv", 60)
    assert theirs is not None and theirs.attempts == 2
    taken = (f"^item {item.id} is no longer held by host-a:/srv: host-b:/srv took it over "
             "after the lease expired; this result was not recorded$")
    with pytest.raises(LeaseLost, match=taken):
        stale.step_done(step(item.id, 0), ["/work/a/x.csv"], {"name": "x.csv"})
    with pytest.raises(LeaseLost, match=taken):
        stale.step_failed(step(item.id, 0, "retry"))
    mine.state = State.FAILED
    with pytest.raises(LeaseLost, match=taken) as caught:
        stale.finish(mine)
    assert isinstance(caught.value, JournalError) and "\n" not in str(caught.value)
    assert stale.renew([item.id], "host-a:/srv", 60) == set()

    stored = new.get(item.id)
    assert stored is not None and (stored.state, stored.step, stored.files) == (State.RUNNING, 0, [])
    assert new.steps(item.id) == [], "nothing of the stale instance's writes was kept"
    assert pg_backend.execute(f"SELECT owner FROM items WHERE id = '{item.id}'") == [("host-b:/srv",)]

    new.step_done(step(item.id, 0), ["/work/b/y.csv"], {})
    theirs.state = State.DONE
    new.finish(theirs)
    with pytest.raises(LeaseLost, match=re.escape(
            f"item {item.id} is no longer held by host-a:/srv: it is done now "
            "(last held by host-b:/srv); this result was not recorded")):
        stale.finish(mine)
    stored = new.get(item.id)
    assert stored is not None and (stored.state, stored.step) == (State.DONE, 1)
    assert [r.outcome for r in new.steps(item.id)] == ["done"]


def test_a_renewed_lease_keeps_the_item_from_another_instance(pg_backend: Backend) -> None:
    a, b = pg_backend.journal(), pg_backend.journal()
    (item,) = a.admit("f", [Candidate(key="a", files=())])
    mine = a.claim(item.id, "host-a", -1.0)  # expired: anyone could take it now …
    assert mine is not None
    assert a.renew([item.id], "host-a", 60) == {item.id}  # … until its owner renews it
    assert b.claim(item.id, "host-b", 60) is None
    assert b.renew([item.id], "host-b", 60) == set()
    a.step_done(step(item.id, 0), ["/work/a/x.csv"], {})
    mine.state = State.DONE
    a.finish(mine)
    stored = b.get(item.id)
    assert stored is not None and (stored.state, stored.step) == (State.DONE, 1)


def test_a_renewal_racing_a_takeover_loses_or_wins_whole(pg_backend: Backend) -> None:
    a, b = pg_backend.journal(), pg_backend.journal()
    items = a.admit("f", [Candidate(key=f"k{n}", files=()) for n in range(150)])
    for item in items:
        assert a.claim(item.id, "host-a", -1.0) is not None
    renewed: set[str] = set()
    taken: set[str] = set()
    start = threading.Barrier(2)

    def renew() -> None:
        start.wait()
        for item in items:
            renewed.update(a.renew([item.id], "host-a", 60))

    def take_over() -> None:
        start.wait()
        # From the other end: the two meet somewhere in the middle and fight over those items.
        taken.update(i.id for i in reversed(items) if b.claim(i.id, "host-b", 60) is not None)

    threads = [threading.Thread(target=renew), threading.Thread(target=take_over)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert renewed | taken == {i.id for i in items} and not renewed & taken
    for item in items:
        if item.id in taken:
            with pytest.raises(LeaseLost, match="host-b took it over"):
                a.step_done(step(item.id, 0), [], {})
        else:
            a.step_done(step(item.id, 0), [], {})
    owners = dict(pg_backend.execute("SELECT id, owner FROM items"))
    assert {i for i, o in owners.items() if o == "host-b"} == taken


def test_instances_starting_together_migrate_once(pg_backend: Backend) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            pg_backend.journal()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pg_backend.execute("SELECT version, count(*) FROM schema_version GROUP BY version "
                              "ORDER BY version") == [(m.version, 1) for m in migrations()]


def test_a_broken_connection_fails_one_call_then_reconnects(pg_backend: Backend) -> None:
    j = pg_backend.journal()
    j.admit("f", [Candidate(key="a", files=())])
    pg_backend.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'ferryman' AND pid <> pg_backend_pid() "
        "AND datname = current_database()")
    with pytest.raises(JournalError, match=r"^cannot read the journal ") as caught:
        j.known("f", ["a"])
    assert "\n" not in str(caught.value)
    assert j.known("f", ["a"]) == {"a"}


def test_unreachable_server_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    address = f"postgresql://ferry:s3cr3t-pw@127.0.0.1:{free_port()}/journal"
    with pytest.raises(JournalError) as caught:
        open_journal(address, tmp_path)
    message = str(caught.value)
    assert message.startswith("cannot open the journal postgresql://ferry:***@127.0.0.1:")
    assert "s3cr3t" not in message and "\n" not in message


def schema_url(conninfo: str, schema: str) -> str:
    """A postgresql:// URL, as a user writes it in the config, for `schema` of the test database."""
    params = conninfo_to_dict(conninfo)
    return (f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
            f"{params.get('port', 5432)}/{params['dbname']}?options={quote(f'-csearch_path={schema}')}")


def test_open_journal_takes_a_postgresql_url(pg_database: str, tmp_path: Path) -> None:
    schema = "url_schema"
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        url = schema_url(pg_database, schema)
        j = open_journal(url, tmp_path)
        try:
            assert isinstance(j, PostgresJournal)
            assert [i.key for i in j.admit("f", [Candidate(key="a", files=())])] == ["a"]
        finally:
            j.close()
        with psycopg.connect(pg_database) as check:
            found = check.execute(f"SELECT key FROM {schema}.items").fetchall()
        assert found == [("a",)]
    finally:
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_step_longer_than_the_lease_keeps_its_item(pg_backend: Backend, pg_database: str,
                                                     tmp_path: Path) -> None:
    """The real daemon renews its leases while a step runs: another instance polling for the item
    never gets it, and the item ends done once."""
    schema = pg_backend.execute("SELECT current_schema()")[0][0]
    url = schema_url(pg_database, schema)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "slow.csv").write_text("a,b\n")
    (tmp_path / "ferryman.toml").write_text(f"""
[ferryman]
root = "state"
journal = "{url}"
lease = "1s"

[flows.slow.source]
type = "folder"
path = "in"
after = "keep"

[[flows.slow.steps]]
type = "command"
command = ["sleep", "3"]
""")
    other = pg_backend.journal()
    taken: list[str] = []
    stop = threading.Event()

    def compete() -> None:
        while not stop.wait(0.1):
            for item in other.history(flow="slow"):
                if other.claim(item.id, "other-host:/srv", 1.0) is not None:
                    taken.append(item.id)

    competitor = threading.Thread(target=compete)
    competitor.start()
    try:
        done = ferryman("run", "--once", cwd=tmp_path)
    finally:
        stop.set()
        competitor.join()
    assert done.returncode == 0, done.stderr
    assert taken == []
    assert [(i.state, i.attempts) for i in other.history(flow="slow")] == [(State.DONE, 1)]
