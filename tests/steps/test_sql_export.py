"""``sql_export`` against the real PostgreSQL: table and column patterns, conditions with templates
sent as parameters, SQLite and CSV output, row counts, and every failure with its one-line message
(a pattern matching nothing, an SQL error in a condition, an unknown database or role, a full disk)."""

from __future__ import annotations

import csv
import secrets
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from ferryman.config import AnyStep
from ferryman.connections import PostgresConnection
from ferryman.errors import PermanentError, TransientError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps import STEPS, StepContext, StepResult
from ferryman.transports import TransportPool
from journal.backends import PG_ADDRESS
from support import unavailable

SCHEMA = r'''
CREATE TABLE members (id int PRIMARY KEY, name text, email text, password_hash text);
CREATE TABLE records (id int, member_id int, title text, price numeric(8,2), created date, active boolean,
                      extra jsonb, photo bytea, score double precision);
CREATE TABLE audit_log (id int, what text);
CREATE TABLE "Mixed ""Name""" (id int);
INSERT INTO members VALUES (1, 'Ann', 'ann@example.org', 'x1'), (2, 'Bob', 'bob@example.org', 'x2');
INSERT INTO records VALUES
  (1, 1, 'alpha', 12.50, '2026-12-01', true, '{"a": 1}', '\x0001', 1.5),
  (2, 2, 'beta', NULL, NULL, false, NULL, NULL, NULL),
  (3, 2, 'a100%', 3.00, '2026-12-02', true, '[]', '', 2.25);
INSERT INTO audit_log VALUES (1, 'login');
'''


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A fresh database holding the tables above; dropped afterwards."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    try:
        admin = psycopg.connect(PG_ADDRESS, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_ADDRESS} is not reachable: {exc}")
        raise
    name = f"ferryman_export_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with psycopg.connect(make_conninfo(PG_ADDRESS, dbname=name), autocommit=True) as conn:
                conn.execute(SCHEMA)
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def export(tmp_path: Path, config: dict[str, Any], meta: dict[str, str] | None = None,
           dsn: str = PG_ADDRESS, work: Path | None = None) -> StepResult:
    table = {"type": "sql_export", "connection": "db", **config}
    model = TypeAdapter(AnyStep).validate_python(table)
    connection = PostgresConnection(type="postgres", dsn=dsn)  # type: ignore[arg-type]
    flow = FlowContext(flow="nightly", root=tmp_path / "root", config_dir=tmp_path, connections={"db": connection},
                       transports=TransportPool({}), journal=None)  # type: ignore[arg-type]
    step = STEPS["sql_export"](model, flow)
    item = Item(id="i1", flow="nightly", key="k", origin="test", meta=dict(meta or {}), files=[])
    ctx = StepContext(flow=flow, item=item, index=0, work_dir=work or tmp_path / "work")
    result = step.run(item, ctx)
    assert result is not None
    return result


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


def test_sqlite_export_with_skips_and_a_condition(tmp_path: Path, database: str) -> None:
    result = export(tmp_path, {
        "database": "{meta.each}", "skip_tables": ["*_log"],
        "skip_columns": {"*": ["password*"], "members": ["email"]},
        "where": {"records": "member_id = {meta.member} AND title NOT LIKE 'z%'"},
        "name": "{meta.each}.sqlite",
    }, meta={"each": database, "member": "2"})
    assert result.files is not None
    path = result.files[0]
    assert path.name == f"{database}.sqlite"
    assert result.outputs["tables"] == {'Mixed "Name"': 0, "members": 2, "records": 2}
    assert result.outputs["skipped_columns"] == {"members": ["email", "password_hash"]}
    assert result.outputs["where"] == {"records": "records"}
    assert rows(path, "SELECT name FROM sqlite_master ORDER BY name") == [('Mixed "Name"',), ("members",), ("records",)]
    assert rows(path, "SELECT * FROM members ORDER BY id") == [(1, "Ann"), (2, "Bob")]
    assert rows(path, "SELECT * FROM records ORDER BY id") == [
        (2, 2, "beta", None, None, 0, None, None, None),
        (3, 2, "a100%", 3, "2026-12-02", 1, "[]", b"", 2.25),
    ]
    assert result.meta == {"export_tables": "3", "export_rows": "4"}


def test_types_survive_in_sqlite(tmp_path: Path, database: str) -> None:
    path = export(tmp_path, {"database": database, "tables": ["records"]}).files[0]  # type: ignore[index]
    assert rows(path, "SELECT price, created, active, extra, photo, typeof(price) FROM records WHERE id = 1") == [
        (12.5, "2026-12-01", 1, '{"a": 1}', b"\x00\x01", "real")]


def test_a_value_that_looks_like_sql_is_only_a_value(tmp_path: Path, database: str) -> None:
    result = export(tmp_path, {"database": database, "tables": ["records"], "where": {"*": "title = {meta.t}"}},
                    meta={"t": "x' OR '1'='1"})
    assert result.outputs["tables"] == {"records": 0}


def test_csv_one_file_per_table(tmp_path: Path, database: str) -> None:
    result = export(tmp_path, {"database": database, "format": "csv", "tables": ["members", "records"],
                               "skip_columns": {"members": ["email", "password_hash"]},
                               "where": {"rec*": "title LIKE 'a%'"}})
    assert [p.name for p in result.files or []] == ["members.csv", "records.csv"]
    assert result.outputs["tables"] == {"members": 2, "records": 2}
    with open(tmp_path / "work" / "records.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["id", "member_id", "title", "price", "created", "active", "extra", "photo", "score"]
    assert [r[2] for r in table[1:]] == ["alpha", "a100%"]


@pytest.mark.parametrize(("config", "message"), [
    ({"tables": ["nope*"]}, "sql_export: tables ['nope*'] match no table in schema 'public' of database"),
    ({"tables": ["audit*"], "skip_tables": ["*_log"]}, "is left out by skip_tables ['*_log']"),
    ({"where": {"recs": "id = 1"}}, "where pattern 'recs' matches no exported table"),
    ({"where": {"records": "no_such_column = 1"}},
     "postgres db: table 'records' (where 'records' = 'no_such_column = 1'): column \"no_such_column\" does not exist"),
    ({"where": {"records": "id = = 1"}}, "syntax error at or near \"=\""),
    ({"tables": ["members"], "skip_columns": {"mem*": ["*"]}}, "skip_columns leave table 'members' without columns"),
])
def test_failures_name_the_cause(tmp_path: Path, database: str, config: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentError) as caught:
        export(tmp_path, {"database": database, **config})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unknown_database_or_role_fails_at_once_without_the_password(tmp_path: Path, database: str) -> None:
    from psycopg.conninfo import make_conninfo

    with pytest.raises(PermanentError, match='database "no_such_db" does not exist'):
        export(tmp_path, {"database": "no_such_db"})
    dsn = make_conninfo(PG_ADDRESS, user="no_such_role", password="s3cret-pw")
    with pytest.raises(PermanentError) as caught:
        export(tmp_path, {"database": database}, dsn=dsn)
    assert 'role "no_such_role" does not exist' in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


def test_an_unreachable_server_is_retried(tmp_path: Path) -> None:
    with pytest.raises(TransientError, match="Connection refused"):
        export(tmp_path, {}, dsn="postgresql://postgres@127.0.0.1:1/postgres")


@pytest.mark.parametrize(("template", "message"), [
    ("name = '{meta.each}'", "write {meta.each} without quotes around it"),
    ("id = {nope}", "unknown template field {nope}"),
])
def test_a_condition_template_is_checked_with_the_config(template: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        TypeAdapter(AnyStep).validate_python({"type": "sql_export", "connection": "db", "where": {"*": template}})


def test_a_csv_name_must_hold_the_table() -> None:
    with pytest.raises(ValidationError, match="must hold"):
        TypeAdapter(AnyStep).validate_python({"type": "sql_export", "connection": "db", "format": "csv",
                                              "name": "all.csv"})


@pytest.fixture
def big_table(database: str) -> Iterator[str]:
    import psycopg
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(make_conninfo(PG_ADDRESS, dbname=database), autocommit=True) as conn:
        conn.execute("CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 6) AS body "
                     "FROM generate_series(1, 60000) g")
        yield "big"
        conn.execute("DROP TABLE big")


@pytest.mark.parametrize("fmt", ["sqlite", "csv"])
def test_a_full_disk_is_a_clear_retryable_error(tmp_path: Path, database: str, big_table: str, tiny_disk: Path,
                                                 fmt: str) -> None:
    with pytest.raises(TransientError) as caught:
        export(tmp_path, {"database": database, "tables": [big_table], "format": fmt}, work=tiny_disk / "work")
    assert "no space left on device (disk full)" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_memory_stays_bounded_whatever_the_table_size(tmp_path: Path, database: str, big_table: str) -> None:
    """60,000 rows of 200 bytes (12 MB of data) through batches of 1,000: the step's peak Python
    allocation stays far below the table's size."""
    tracemalloc.start()
    try:
        result = export(tmp_path, {"database": database, "tables": [big_table], "batch_rows": 1000})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.outputs["tables"] == {"big": 60000}
    assert peak < 4 * 1024 * 1024, peak
