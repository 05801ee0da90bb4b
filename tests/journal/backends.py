"""Journal backends for the journal suites: a SQLite file in a temp folder, and a schema
in a throwaway database on the real PostgreSQL server (TESTING.md; address from
``FERRYMAN_TEST_PG``).

A `Backend` opens the same journal as often as a test wants (to check what
survives a close and reopen) and runs raw SQL on it behind the journal's back.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ferryman.journal.base import Journal
from ferryman.journal.postgres import PostgresJournal
from ferryman.journal.sqlite import SqliteJournal
from support import unavailable

PG_ADDRESS = os.environ.get("FERRYMAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Backend:
    name: str
    open: Callable[[], Journal]
    execute: Callable[[str], list[tuple[Any, ...]]]
    """Run one SQL statement on the journal's database directly; its rows."""
    opened: list[Journal] = field(default_factory=list)

    def journal(self) -> Journal:
        """Open the journal (again); closed at the end of the test."""
        journal = self.open()
        self.opened.append(journal)
        return journal

    def close_all(self) -> None:
        for journal in self.opened:
            journal.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A libpq conninfo for a fresh database on the test server, dropped after the session."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    try:
        admin = psycopg.connect(PG_ADDRESS, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_ADDRESS} is not reachable: {exc}")
        raise
    name = f"ferryman_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_conninfo(PG_ADDRESS, dbname=name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_schema_backend(conninfo: str) -> Iterator[Backend]:
    """A fresh schema in the session database; the journal finds it through search_path."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"j_{secrets.token_hex(4)}"
    admin = psycopg.connect(conninfo, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    dsn = make_conninfo(conninfo, options=f"-csearch_path={schema}")

    def execute(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    backend = Backend("postgresql", lambda: PostgresJournal(dsn), execute)
    try:
        yield backend
    finally:
        backend.close_all()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def sqlite_backend(folder: Path) -> Iterator[Backend]:
    path = folder / "journal.db"

    def execute(sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    backend = Backend("sqlite", lambda: SqliteJournal(path), execute)
    try:
        yield backend
    finally:
        backend.close_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each journal backend in turn."""
    if request.param == "sqlite":
        yield from sqlite_backend(tmp_path)
    else:
        yield from pg_schema_backend(request.getfixturevalue("pg_database"))


@pytest.fixture
def pg_backend(pg_database: str) -> Iterator[Backend]:
    """The PostgreSQL backend only."""
    yield from pg_schema_backend(pg_database)
