"""Which tables and columns an export takes, and the SELECT of each (psycopg `sql` composition only:
names as identifiers, conditions as the config's SQL with ``%s`` parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from ferryman.errors import PermanentError
from ferryman.steps.tables.config import Condition, SqlExportConfig, condition

SQLITE_TYPES = {
    "smallint": "INTEGER", "integer": "INTEGER", "bigint": "INTEGER", "boolean": "INTEGER",
    "real": "REAL", "double precision": "REAL", "numeric": "NUMERIC", "bytea": "BLOB",
}
"""PostgreSQL types kept as they are in SQLite (booleans as 0/1); every other type goes as its text."""

NATIVE = {"smallint", "integer", "bigint", "real", "double precision", "bytea"}
"""Types psycopg hands over as int, float or bytes, which sqlite3 stores as they are."""


@dataclass
class Column:
    name: str
    pg_type: str


@dataclass
class Table:
    """One table of the export: the columns kept, and its condition (and the pattern that chose it)."""

    name: str
    columns: list[Column] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    where: Condition | None = None
    where_pattern: str | None = None


def plan(config: SqlExportConfig, listing: list[tuple[str, str, str]], database: str) -> list[Table]:
    """The tables to export from `listing` (table, column, type rows in column order); `PermanentError`
    for patterns that choose nothing."""
    tables: dict[str, Table] = {}
    for name, column, pg_type in listing:
        tables.setdefault(name, Table(name)).columns.append(Column(column, pg_type))
    where = f"schema {config.schema_!r} of database {database!r}"
    matched = [t for t in tables if any(fnmatchcase(t, p) for p in config.tables)]
    if not matched:
        have = ", ".join(sorted(tables)[:20]) or "no tables"
        raise PermanentError(f"sql_export: tables {config.tables} match no table in {where} (it has: {have})")
    chosen = [tables[t] for t in matched if not any(fnmatchcase(t, p) for p in config.skip_tables)]
    if not chosen:
        raise PermanentError(f"sql_export: every table that tables {config.tables} match in {where} is left out "
                             f"by skip_tables {config.skip_tables}")
    used: set[str] = set()
    for table in chosen:
        drop = [p for pattern, columns in config.skip_columns.items() if fnmatchcase(table.name, pattern)
                for p in columns]
        table.skipped = [c.name for c in table.columns if any(fnmatchcase(c.name, p) for p in drop)]
        table.columns = [c for c in table.columns if c.name not in table.skipped]
        if not table.columns:
            raise PermanentError(f"sql_export: skip_columns leave table {table.name!r} without columns")
        for pattern, text in config.where.items():
            if fnmatchcase(table.name, pattern):
                table.where, table.where_pattern = condition(text), pattern
                used.add(pattern)
                break
    unused = [p for p in config.where if p not in used]
    if unused:
        raise PermanentError(f"sql_export: where pattern {unused[0]!r} matches no exported table in {where}; "
                             "refusing to export those tables unfiltered")
    return chosen


def select(schema: str, table: Table, cast: bool) -> Any:
    """The SELECT of `table` as a psycopg `Composed`; `cast`: types SQLite cannot hold come as text."""
    from psycopg import sql

    def column(c: Column) -> sql.Composable:
        name = sql.Identifier(c.name)
        if not cast or c.pg_type in NATIVE:
            return name
        target = "int" if c.pg_type == "boolean" else "text"
        return sql.SQL("{}::{}").format(name, sql.SQL(target))

    query: sql.Composable = sql.SQL("SELECT {} FROM {}.{}").format(
        sql.SQL(", ").join(column(c) for c in table.columns), sql.Identifier(schema), sql.Identifier(table.name))
    if table.where is not None:
        query = query + sql.SQL(" WHERE (") + sql.SQL(table.where.sql) + sql.SQL(")")
    return query


LISTING = """
SELECT c.relname, a.attname, format_type(a.atttypid, NULL)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
ORDER BY c.relname, a.attnum
"""
"""The tables, partitioned tables (not their partitions), views and materialized views of a schema,
with their columns in order and each column's type as `format_type` names it (the catalog, not
information_schema: a tenth of the time on a database with many tables)."""
