"""Writing one table: rows from a server-side cursor into SQLite, or ``COPY … TO STDOUT`` into a CSV.

Both stream: SQLite takes `batch_rows` rows at a time from a named (server-side) cursor; a CSV
is written block by block as the server sends it.  Memory stays bounded whatever the table's size.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ferryman.steps.tables.select import SQLITE_TYPES, Table, select


def quote(name: str) -> str:
    """An SQLite identifier."""
    return '"' + name.replace('"', '""') + '"'


def create_sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    # The file is new and only complete once the step returns (the engine fsyncs it then):
    # no rollback journal is needed while it is filled.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    return db


def to_sqlite(conn: Any, db: sqlite3.Connection, schema: str, table: Table, params: list[str],
              batch: int) -> int:
    """Copy `table`'s rows into a new table of `db`; the number of rows."""
    columns = ", ".join(f"{quote(c.name)} {SQLITE_TYPES.get(c.pg_type, 'TEXT')}" for c in table.columns)
    db.execute(f"CREATE TABLE {quote(table.name)} ({columns})")
    insert = f"INSERT INTO {quote(table.name)} VALUES ({', '.join('?' * len(table.columns))})"
    rows = 0
    db.execute("BEGIN")
    with conn.cursor(name=f"ferryman_export_{abs(hash(table.name))}") as cursor:
        cursor.itersize = batch
        cursor.execute(select(schema, table, cast=True), params)
        while chunk := cursor.fetchmany(batch):
            db.executemany(insert, chunk)
            rows += len(chunk)
    db.execute("COMMIT")
    return rows


def to_csv(conn: Any, target: Path, schema: str, table: Table, params: list[str]) -> int:
    """Write `table` as CSV with a header line (PostgreSQL's own CSV); the number of rows."""
    from psycopg import sql

    statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(select(schema, table, False))
    with conn.cursor() as cursor, open(target, "wb") as out:
        with cursor.copy(statement, params) as copy:
            for block in copy:
                out.write(block)
        return int(cursor.rowcount)
