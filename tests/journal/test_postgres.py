"""The PostgreSQL journal beyond the contract: several instances, broken connections, addresses."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ferryman.errors import JournalError
from ferryman.item import Candidate
from ferryman.journal import open_journal
from ferryman.journal.base import Journal
from ferryman.journal.postgres import PostgresJournal
from journal.backends import Backend
from support import free_port


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
    assert pg_backend.execute("SELECT version, count(*) FROM schema_version GROUP BY version") == [
        (1, 1)]


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


def test_open_journal_takes_a_postgresql_url(pg_database: str, tmp_path: Path) -> None:
    params = conninfo_to_dict(pg_database)
    schema = "url_schema"
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        url = (f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
               f"{params.get('port', 5432)}/{params['dbname']}"
               f"?options={quote(f'-csearch_path={schema}')}")
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
