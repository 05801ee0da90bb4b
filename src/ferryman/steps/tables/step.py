"""``sql_export``: chosen tables of a PostgreSQL database as one portable SQLite file or one CSV per table.

CIOC's Access downloads: ``tables`` minus ``skip_tables``, ``skip_columns`` per table pattern,
``where`` per table pattern (``{meta.each}`` and other templates in it become query parameters),
then the ``zip`` step with a password and ``deliver``.

- Every table is read in one ``REPEATABLE READ, READ ONLY`` transaction: the tables agree with
  each other, and the export can change nothing.
- Row counts per table go into the step's journaled outputs.
- The connection string is a secret; messages carry the server's words, never the DSN.
- A lost connection or a full disk is retried; an SQL error, an unknown database or role,
  a refused password and a pattern that matches nothing fail the item.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ferryman import templates
from ferryman.errors import FerrymanError, PermanentError, TransientError
from ferryman.item import Item
from ferryman.steps.base import Step, StepContext, StepResult
from ferryman.steps.sql import connect_args, server_message
from ferryman.steps.tables.config import SqlExportConfig
from ferryman.steps.tables.select import LISTING, Table, plan
from ferryman.steps.tables.write import create_sqlite, to_csv, to_sqlite
from ferryman.transports.local import os_errors

PERMANENT_CONNECT = ("does not exist", "password authentication failed", "no password supplied",
                     "authentication failed", "permission denied")
"""Words of a connection error that retrying cannot mend."""


class SqlExportStep(Step[SqlExportConfig]):
    """Writes the export in the work folder; the item then carries it (with its files before)."""

    Config = SqlExportConfig

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        import psycopg

        values = ctx.values()
        dsn, extra = connect_args(self.flow, self.config.connection, self.config.database, self.config.timeout,
                                  values)
        counts: dict[str, int] = {}
        files: list[Path] = []
        with self._errors() as where, psycopg.connect(dsn, **extra) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            database = conn.info.dbname
            listing = [tuple(row) for row in conn.execute(LISTING, [self.config.schema_])]
            tables = plan(self.config, listing, database)
            if self.config.format == "sqlite":
                files.append(self._sqlite(conn, tables, ctx, values, counts, where))
            else:
                files += self._csv(conn, tables, ctx, values, counts, where)
        skipped = {t.name: t.skipped for t in tables if t.skipped}
        outputs: dict[str, Any] = {"database": database, "tables": counts, "rows": sum(counts.values()),
                                   "files": [p.name for p in files]}
        if skipped:
            outputs["skipped_columns"] = skipped
        conditions = {t.name: t.where_pattern for t in tables if t.where_pattern}
        if conditions:
            outputs["where"] = conditions
        return StepResult(files=[*item.files, *files], outputs=outputs,
                          meta={"export_tables": str(len(counts)), "export_rows": str(sum(counts.values()))})

    def _sqlite(self, conn: Any, tables: list[Table], ctx: StepContext, values: dict[str, Any],
                counts: dict[str, int], where: list[str]) -> Path:
        target = ctx.work_dir / templates.render_name(self.config.file_name(), {**values, "table": ""})
        db = create_sqlite(target)
        try:
            for table in tables:
                where[:] = [table.name, table.where_pattern or ""]
                counts[table.name] = to_sqlite(conn, db, self.config.schema_, table, _params(table, values),
                                               self.config.batch_rows)
            where[:] = []
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise PermanentError(f"sql_export: the SQLite file {target.name} is damaged: {check}")
        finally:
            db.close()
        return target

    def _csv(self, conn: Any, tables: list[Table], ctx: StepContext, values: dict[str, Any],
             counts: dict[str, int], where: list[str]) -> list[Path]:
        files: list[Path] = []
        for table in tables:
            where[:] = [table.name, table.where_pattern or ""]
            target = ctx.work_dir / templates.render_name(self.config.file_name(), {**values, "table": table.name})
            counts[table.name] = to_csv(conn, target, self.config.schema_, table, _params(table, values))
            files.append(target)
        where[:] = []
        return files

    @contextmanager
    def _errors(self) -> Iterator[list[str]]:
        """Map psycopg, sqlite3 and OS errors to one-line messages; the list it yields names the table
        being written (and its where pattern), for the message."""
        import psycopg

        where: list[str] = []
        name = f"postgres {self.config.connection}"

        def at() -> str:
            if not where:
                return ""
            table, pattern = where
            condition = f" (where {pattern!r} = {self.config.where[pattern]!r})" if pattern else ""
            return f" table {table!r}{condition}:"

        try:
            with os_errors("sql_export: cannot write"):
                yield where
        except FerrymanError:
            raise
        except psycopg.OperationalError as exc:
            message = server_message(exc)
            if where and getattr(exc, "sqlstate", None):  # the server refused a statement: not a connection
                raise PermanentError(f"{name}:{at()} {message}") from None
            kind = PermanentError if any(w in message for w in PERMANENT_CONNECT) else TransientError
            raise kind(f"{name}:{at()} {message}") from None
        except psycopg.Error as exc:
            raise PermanentError(f"{name}:{at()} {server_message(exc)}") from None
        except sqlite3.Error as exc:
            if "full" in str(exc):
                raise TransientError(f"sql_export:{at()} cannot write the SQLite file: no space left on device "
                                     "(disk full)") from None
            raise PermanentError(f"sql_export:{at()} SQLite: {exc}") from None


def _params(table: Table, values: dict[str, Any]) -> list[str]:
    """The values of the table's condition, rendered from the item (always a list: psycopg then reads
    ``%%`` in the condition as ``%``)."""
    return [templates.render(t, values) for t in table.where.values] if table.where else []
